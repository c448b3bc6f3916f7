"""`earnwatch explain` as a user runs it: a subprocess in a folder whose `.env` names a
SQLite database that a real `earnwatch run --once` filled from the fake Finnhub server
(rule states and the last known market data), and the same rule file."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from service.config import Settings
from service.explain_command import active_silences, show_explain
from service.stages import Decision
from service.store import open_store
from tests.e2e import Daemon, fast_env, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.rules.conftest import load
from tests.servers import Receiver
from tests.store.helpers import T0, make_alert, render
from tests.test_commands import TODAY, earnwatch, output, write_env

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [hook]
  - name: above-target
    symbols: [LUMN, PLTR]
    when: price > 7.56
    clear_when: price < 7.40
    notify: [hook]
  - name: cheap
    symbols: [LUMN]
    when: price < 5 and change_pct < -2
    notify: [hook]
"""
#: Reported (the revenue is out) with no EPS actual yet: `eps_actual` is unknown.
LUMN_REVENUE_ONLY = {
    "symbol": "LUMN",
    "date": TODAY.isoformat(),
    "hour": "amc",
    "year": 2025,
    "quarter": 4,
    "epsEstimate": -0.21,
    "epsActual": None,
    "revenueEstimate": 3080000000,
    "revenueActual": 3041000000,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """After one `run --once`: LUMN at 8.46 (above-target fired), PLTR without a quote."""
    path = tmp_path_factory.mktemp("explain")
    with FakeFinnhub() as finnhub, Receiver() as hook:
        finnhub.set_event(**LUMN_REVENUE_ONLY)
        finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()) - 30)
        (path / "rules.yaml").write_text(RULES)
        write_env(
            path,
            "FINNHUB_API_KEY=test-finnhub-key",
            f"FINNHUB_BASE_URL={finnhub.base_url}",
            f"HOOK_URL={hook.url_for('/hook')}",
            "EARNWATCH_RULES=rules.yaml",
        )
        result = earnwatch("run", "--once", cwd=path)
        assert result.returncode == 0, output(result)
        assert [json.loads(r.body)["rule"] for r in hook.requests] == ["above-target"]
    # the provider is gone: explain must not need it
    yield path


def test_a_rule_that_cannot_fire_names_the_unknown_value(folder: Path) -> None:
    result = earnwatch("explain", "lumn-miss", cwd=folder)
    assert result.returncode == 0, output(result)
    text = result.stdout
    assert "when        reported and eps_actual < eps_estimate" in text
    assert "verdict     cannot fire: eps_actual is unknown" in text
    assert re.search(r"eps_actual\s+n/a\s+age unknown", text), text
    assert re.search(r"true\s+reported\b", text), text
    assert "(unknown: eps_actual)" in text
    assert re.search(r"^  state       armed$", text, re.M), text
    assert "Traceback" not in output(result)


def test_a_fired_rule_shows_when_it_fired_and_the_rearm_condition(folder: Path) -> None:
    result = earnwatch("explain", "above-target", "--symbol", "lumn", cwd=folder)
    assert result.returncode == 0, output(result)
    text = result.stdout
    assert "clear_when  price < 7.40" in text
    fired = re.search(
        r"verdict     fired at (\d{4}-\d\d-\d\d \d\d:\d\dZ), re-arms when price < 7\.40", text
    )
    assert fired, text
    assert f"state       fired at {fired.group(1)}, not armed" in text
    assert re.search(r"price\s+8\.46\s+\d+s old", text), text  # the quote's time is kept
    assert "PLTR" not in text  # --symbol: that symbol only


def test_json_holds_one_object_with_every_symbol(folder: Path) -> None:
    result = earnwatch("explain", "above-target", "--json", cwd=folder)
    assert result.returncode == 0, output(result)
    body = json.loads(result.stdout)
    assert body["rule"] == "above-target" and body["clear_when"] == "price < 7.40"
    lumn, pltr = body["symbols"]
    assert {"symbol", "value", "values", "state", "verdict", "comparisons"} <= set(lumn)
    assert lumn["symbol"] == "LUMN" and lumn["value"] is True
    assert lumn["values"]["price"]["value"] == 8.46
    assert 25 <= lumn["values"]["price"]["age_seconds"] < 600
    assert lumn["state"]["armed"] is False and lumn["state"]["last_fired"]
    assert lumn["state"]["amended"] is None  # no notify_amended
    assert lumn["verdict"].startswith("fired at ")
    when, clear = lumn["comparisons"]
    assert when == {
        "condition": "when",
        "text": "price > 7.56",
        "op": ">",
        "left": 8.46,
        "right": 7.56,
        "value": True,
        "unknown": [],
        "error": None,
    }
    assert clear["condition"] == "clear_when" and clear["value"] is False
    assert pltr["symbol"] == "PLTR" and pltr["value"] is None
    assert pltr["values"]["price"] == {"value": None, "age_seconds": None}
    assert pltr["unknown"] == ["price"] and pltr["verdict"] == "cannot fire: price is unknown"


def test_a_false_condition_says_which_comparison_is_false(folder: Path) -> None:
    result = earnwatch("explain", "cheap", "--json", cwd=folder)
    assert result.returncode == 0, output(result)
    (lumn,) = json.loads(result.stdout)["symbols"]
    assert lumn["value"] is False
    assert lumn["verdict"] == "false: price 8.46 is not < 5"  # change_pct < -2 holds


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("explain", "no-such-rule"),
            "explain: no rule 'no-such-rule' in the rule file "
            "(rules: lumn-miss, above-target, cheap)",
        ),
        (
            ("explain", "lumn-miss", "--symbol", "EQIX"),
            "explain: rule 'lumn-miss' does not watch EQIX (it watches LUMN)",
        ),
    ],
)
def test_an_unknown_rule_or_symbol_exits_1_naming_what_exists(
    folder: Path, args: tuple[str, ...], expected: str
) -> None:
    result = earnwatch(*args, cwd=folder)
    assert result.returncode == 1
    assert result.stderr.strip() == expected and result.stdout == ""


def test_without_stored_data_every_value_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    write_env(tmp_path, "HOOK_URL=http://127.0.0.1:9/hook", "EARNWATCH_RULES=rules.yaml")
    result = earnwatch("explain", "lumn-miss", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "no market data stored yet" in result.stdout
    assert (
        "verdict     cannot fire: reported, eps_actual and eps_estimate are unknown"
        in result.stdout
    )


def test_explain_reads_beside_a_running_daemon(tmp_path: Path) -> None:
    """While `earnwatch run` polls and writes, explain follows the stored state: fired,
    then armed again once the price fell through the clear_when."""
    with FakeFinnhub() as finnhub, Receiver() as hook:
        finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        (tmp_path / "rules.yaml").write_text(RULES)
        lines = [*fast_env(tmp_path, finnhub.base_url), f"HOOK_URL={hook.url_for('/hook')}"]
        (tmp_path / ".env").write_text("\n".join(lines) + "\n")

        def explained() -> str:
            result = earnwatch("explain", "above-target", "--symbol", "LUMN", cwd=tmp_path)
            assert result.returncode == 0, output(result)
            return result.stdout

        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: hook.requests, 30, "the above-target alert", daemon)
            wait_for(lambda: "re-arms when price < 7.40" in explained(), 20, "fired", daemon)
            finnhub.set_quote("LUMN", 7.30, 8.93, int(time.time()))
            wait_for(lambda: "state       armed" in explained(), 30, "re-armed", daemon)
            assert "false: price 7.3 is not > 7.56" in explained()
            assert daemon.process is not None and daemon.process.poll() is None


def test_deferred_deliveries_and_silences_come_from_the_store(tmp_path: Path) -> None:
    """A delivery a stage deferred shows in the state with its time and reason; a store
    with `silences(now)` (the silences part) has its matching silences shown; a store
    without it has none."""
    url = f"sqlite:///{tmp_path}/earnwatch.db"
    store = open_store(url)
    until = T0 + timedelta(hours=9)
    routes = [("hook", "webhook", Decision.defer(until, "quiet hours of hook"))]
    store.record([(make_alert(1, rule="beat"), render, routes)], {}, T0)
    store.record([(make_alert(2, rule="beat"), render, [("hook", "webhook")])], {}, T0)
    assert active_silences(store, T0) == []
    store.close()
    ruleset = load(
        "rules:\n  - {name: beat, symbols: [SYM1, SYM2], when: 'reported and eps_actual > 0'}"
    )
    settings = Settings(_env_file=None, database_url=url)
    code, text = show_explain(settings, ruleset, "beat", None, as_json=True, now=T0)
    assert code == 0, text
    sym1, sym2 = json.loads(text)["symbols"]
    assert sym1["state"]["deferred"] == [
        {"channel": "hook", "until": until.isoformat(), "reason": "quiet hours of hook"}
    ]
    assert sym2["state"]["deferred"] == []

    silence = SimpleNamespace(id="s_1", rule="beat", symbol=None, starts_at=T0, ends_at=until)

    class WithSilences:
        def silences(self, now: datetime) -> list[SimpleNamespace]:
            return [silence]

    assert active_silences(WithSilences(), T0) == [silence]  # type: ignore[arg-type]


def test_a_digest_rule_shows_its_next_firing_its_message_and_when_it_last_sent(
    tmp_path: Path,
) -> None:
    from service.digest import digest_alert
    from service.market import EarningsEvent, ReportTime
    from service.marketdata import MarketData

    (tmp_path / "rules.yaml").write_text(
        'channels:\n  hook: {type: webhook, url: "${HOOK_URL}"}\n'
        "rules:\n  - name: week-ahead\n    symbols: [LUMN, PLTR]\n"
        '    digest: "0 8 * * mon"\n    notify: [hook]\n'
    )
    write_env(tmp_path, "HOOK_URL=https://hooks.example.com/x", "EARNWATCH_RULES=rules.yaml")
    (digest,) = load(
        (tmp_path / "rules.yaml").read_text(), {"HOOK_URL": "https://h.example/x"}
    ).digests
    now = datetime.now(UTC)
    firing = digest.cron.get_next_fire_time(None, now)
    day = firing.astimezone(digest.tz).date() + timedelta(days=1)
    event = EarningsEvent("LUMN", day, ReportTime.AMC, 2025, 4, eps_estimate=-0.21)
    data = MarketData(events={"LUMN": (event,)})
    store = open_store(f"sqlite:///{tmp_path}/earnwatch.db")
    store.save_market_data("market", data.to_json(), now)
    last = firing - timedelta(days=7)
    sent = digest_alert(
        digest, last, MarketData(events={"LUMN": (replace(event, date=day - timedelta(days=7)),)})
    )
    assert sent is not None
    store.record([(sent, render, [("hook", "webhook")])], {}, last)
    store.close()

    result = earnwatch("explain", "week-ahead", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    lines = result.stdout.splitlines()
    shown = f"{firing.astimezone(digest.tz):%Y-%m-%d %H:%M %Z}"
    assert lines[0] == "rule        week-ahead"
    assert lines[1] == "digest      0 8 * * mon (America/New_York), the 7 days from each firing"
    assert lines[2].startswith("data        saved at ")
    assert lines[3].startswith(f"verdict     sends 1 report at {shown} (")
    assert lines[4].startswith(f"last sent   {last.astimezone(digest.tz):%Y-%m-%d %H:%M %Z} (")
    assert lines[5] == f"message     week-ahead: 1 report in the 7 days from {shown}"
    assert lines[6].startswith(f"            LUMN {day.isoformat()} (")

    body = json.loads(earnwatch("explain", "week-ahead", "--json", cwd=tmp_path).stdout)
    assert body["next_firing"] == firing.astimezone(UTC).isoformat() and body["reports"] == 1
    assert body["last_sent"] == last.astimezone(UTC).isoformat() and body["message"].startswith(
        "week-ahead: 1"
    )
    assert body["tz"] == "America/New_York" and body["window_seconds"] == 7 * 86400
    wrong = earnwatch("explain", "week-ahead", "--symbol", "EQIX", cwd=tmp_path)
    assert wrong.returncode == 1
    assert wrong.stdout + wrong.stderr == (
        "explain: rule 'week-ahead' does not watch EQIX (it watches LUMN, PLTR)\n"
    )
