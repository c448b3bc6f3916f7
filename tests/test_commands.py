"""The one-shot commands as a user runs them: `earnwatch test-notify`, `history`, `calendar`
and `run --once`, each a subprocess in a temporary folder with a `.env`, against real
servers on 127.0.0.1 (the fake Finnhub and webhook receivers)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver, Reply

ROOT = Path(__file__).resolve().parent.parent
TODAY = datetime.now(ZoneInfo("America/New_York")).date()
SECRET_PATH = "/hooks/earnings-s3cr3t-path"
SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5"
LUMN_MISSED = {
    "symbol": "LUMN",
    "date": TODAY.isoformat(),
    "hour": "amc",
    "year": 2025,
    "quarter": 4,
    "epsEstimate": -0.21,
    "epsActual": -0.30,
    "revenueEstimate": 3080000000,
    "revenueActual": 3041000000,
}
PLTR_MISSED = {**LUMN_MISSED, "symbol": "PLTR", "epsEstimate": 0.23, "epsActual": 0.2}
EQIX_UPCOMING = {
    "symbol": "EQIX",
    "date": (TODAY + timedelta(days=5)).isoformat(),
    "hour": "bmo",
    "year": 2025,
    "quarter": 4,
    "epsEstimate": 8.5,
    "revenueEstimate": 2350000000,
}

HOOK_RULES = """\
channels:
  hook:
    type: webhook
    url: "${HOOK_URL}"
    secret: "${HOOK_SECRET}"
rules:
  - name: miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [hook]
"""

HISTORY_RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}", secret: "${HOOK_SECRET}"}
  gone: {type: webhook, url: "${GONE_URL}"}
rules:
  - name: eps-miss
    symbols: [LUMN, PLTR]
    when: reported and eps_actual < eps_estimate
    notify: [hook]
    message: "{{ symbol }} missed: EPS {{ eps_actual }} vs {{ eps_estimate }}"
  - name: lumn-cheap
    symbols: [LUMN]
    when: price < 10
    notify: [gone]
"""

CALENDAR_RULES = """\
rules:
  - name: miss
    symbols: [LUMN, EQIX]
    when: reported and eps_actual < eps_estimate
"""


def earnwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


def write_env(folder: Path, *lines: str, private: bool = True) -> None:
    base = [f"EARNWATCH_DATABASE_URL=sqlite:///{folder}/earnwatch.db", f"HOOK_SECRET={SECRET}"]
    if private:
        base.append("EARNWATCH_ALLOW_PRIVATE_TARGETS=true")
    (folder / ".env").write_text("\n".join([*base, *lines]) + "\n")


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def assert_no_secret(text: str) -> None:
    assert "s3cr3t" not in text and SECRET not in text and "c2VjcmV0" not in text
    assert "test-finnhub-key" not in text
    assert "Traceback" not in text


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    with FakeFinnhub() as fake:
        yield fake


# --- test-notify -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "code", "expected"),
    [
        (Reply(200, b"ok"), 0, "hook (webhook): delivered"),
        (Reply(500, b"upstream down"), 1, "hook (webhook): failed (retryable): HTTP 500"),
    ],
)
def test_test_notify_reports_the_receivers_answer_in_one_line(
    tmp_path: Path, reply: Reply, code: int, expected: str
) -> None:
    (tmp_path / "rules.yaml").write_text(HOOK_RULES)
    with Receiver(default=reply) as receiver:
        write_env(tmp_path, f"HOOK_URL={receiver.url_for(SECRET_PATH)}")
        result = earnwatch("test-notify", "hook", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == code, output(result)
    text = (result.stdout if code == 0 else result.stderr).strip()
    assert len(text.splitlines()) == 1 and text.startswith(expected), text
    assert (result.stderr if code == 0 else result.stdout) == ""
    assert len(receiver.requests) == 1  # one attempt: test-notify never retries
    request = receiver.requests[0]
    assert request.path == SECRET_PATH and request.headers["webhook-signature"].startswith("v1,")
    assert json.loads(request.body)["symbol"] == "TEST"
    assert_no_secret(output(result))


def test_test_notify_of_an_unknown_channel_names_the_defined_ones(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(HOOK_RULES)
    with Receiver() as receiver:
        write_env(tmp_path, f"HOOK_URL={receiver.url_for(SECRET_PATH)}")
        result = earnwatch("test-notify", "team-slack", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "test-notify: no channel 'team-slack' in the rule file (defined: hook)"
    )
    assert receiver.requests == []
    assert_no_secret(output(result))


def test_a_loopback_webhook_is_refused_without_allow_private_targets(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(HOOK_RULES)
    with Receiver() as receiver:
        write_env(tmp_path, f"HOOK_URL={receiver.url_for(SECRET_PATH)}", private=False)
        notify = earnwatch("test-notify", "hook", "--rules", "rules.yaml", cwd=tmp_path)
        check = earnwatch("check", "rules.yaml", cwd=tmp_path)
    assert receiver.requests == [] and receiver.connections == 0
    for result in (notify, check):
        assert result.returncode == 1, output(result)
        first = result.stderr.splitlines()[0]
        # the problem is reported at the `url` line (4) of the channel
        assert re.match(r"^rules\.yaml:4:\d+: .*refused target '127\.0\.0\.1'", first), first
        assert "EARNWATCH_ALLOW_PRIVATE_TARGETS" in first
        assert result.stdout == ""
        assert_no_secret(output(result))


DISCORD_PATH = "/api/webhooks/123456789012345678/discord-s3cr3t-token"
DISCORD_RULES = """\
channels:
  alerts:
    type: discord
    url: "${DISCORD_URL}"
rules:
  - name: miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [alerts]
"""


def test_test_notify_delivers_one_discord_message(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(DISCORD_RULES)
    with Receiver(default=Reply(204)) as receiver:
        write_env(tmp_path, f"DISCORD_URL={receiver.url_for(DISCORD_PATH)}")
        result = earnwatch("test-notify", "alerts", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == "alerts (discord): delivered" and result.stderr == ""
    [request] = receiver.requests
    assert request.path == DISCORD_PATH
    body = json.loads(request.body)
    assert body["content"] == "TEST · earnwatch test-notify (alerts)"
    assert body["embeds"][0]["fields"] == [{"name": "price", "value": "7.56", "inline": True}]
    assert body["allowed_mentions"] == {"parse": []}
    assert_no_secret(output(result))


def test_test_notify_to_a_deleted_discord_webhook_fails_for_good(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(DISCORD_RULES)
    gone = Reply(404, '{"message": "Unknown Webhook", "code": 10015}')
    with Receiver(default=gone) as receiver:
        write_env(tmp_path, f"DISCORD_URL={receiver.url_for(DISCORD_PATH)}")
        result = earnwatch("test-notify", "alerts", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 1, output(result)
    assert result.stderr.strip() == (
        "alerts (discord): failed (permanent): "
        f"Discord HTTP 404 from 127.0.0.1:{receiver.port}: Unknown Webhook (code 10015)"
    )
    assert result.stdout == "" and len(receiver.requests) == 1
    assert_no_secret(output(result))


def test_check_accepts_a_discord_channel_and_refuses_a_metadata_url_at_its_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(DISCORD_RULES)
    write_env(tmp_path, "DISCORD_URL=http://127.0.0.1:9" + DISCORD_PATH)
    valid = earnwatch("check", "rules.yaml", cwd=tmp_path)
    assert valid.returncode == 0, output(valid)
    assert valid.stdout.splitlines()[0] == "rules.yaml: OK: 1 rule, 1 symbol, 1 channel"
    write_env(tmp_path, "DISCORD_URL=http://169.254.169.254" + DISCORD_PATH)
    refused = earnwatch("check", "rules.yaml", cwd=tmp_path)
    assert refused.returncode == 1 and refused.stdout == ""
    first = refused.stderr.splitlines()[0]
    # the problem is reported at the `url` line (4) of the channel
    assert re.match(r"^rules\.yaml:4:\d+: .*refused target '169\.254\.169\.254'", first), first
    assert_no_secret(output(valid) + output(refused))


# --- run --once and history ----------------------------------------------------------------


@pytest.fixture
def ran_once(tmp_path: Path, finnhub: FakeFinnhub) -> Iterator[tuple[Path, Receiver, Receiver]]:
    """`earnwatch run --once` over two reported misses and a cheap quote: two alerts
    delivered to `hook`, one dead on `gone` (HTTP 404)."""
    finnhub.set_event(**LUMN_MISSED)
    finnhub.set_event(**PLTR_MISSED)
    finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()))
    finnhub.set_quote("PLTR", 180.0, 178.0, int(time.time()))
    (tmp_path / "rules.yaml").write_text(HISTORY_RULES)
    with Receiver() as hook, Receiver(default=Reply(404, b"no such hook")) as gone:
        write_env(
            tmp_path,
            "FINNHUB_API_KEY=test-finnhub-key",
            f"FINNHUB_BASE_URL={finnhub.base_url}",
            f"HOOK_URL={hook.url_for(SECRET_PATH)}",
            f"GONE_URL={gone.url_for('/gone-s3cr3t')}",
        )
        result = earnwatch("run", "--once", "--rules", "rules.yaml", cwd=tmp_path)
        assert result.returncode == 0, output(result)
        assert_no_secret(output(result))
        yield tmp_path, hook, gone


def test_run_once_delivers_and_history_shows_an_aligned_table(
    ran_once: tuple[Path, Receiver, Receiver],
) -> None:
    folder, hook, gone = ran_once
    assert sorted(json.loads(r.body)["symbol"] for r in hook.requests) == ["LUMN", "PLTR"]
    assert len(gone.requests) == 1  # 404 is permanent: one attempt
    result = earnwatch("history", cwd=folder)
    assert result.returncode == 0, output(result)
    lines = result.stdout.rstrip("\n").splitlines()
    header = lines[0]
    assert header.split() == [
        "FIRED",
        "RULE",
        "SYMBOL",
        "CHANNEL",
        "STATUS",
        "ATTEMPTS",
        "LAST",
        "ERROR",
        "MESSAGE",
    ]
    assert set(lines[1]) == {"-", " "}
    rows = lines[2:]
    assert len(rows) == 3
    status_at = header.index("STATUS")
    channel_at = header.index("CHANNEL")
    attempts_end = header.index("ATTEMPTS") + len("ATTEMPTS")
    by_rule: dict[str, list[str]] = {}
    for row in rows:
        rule = row[header.index("RULE") : channel_at].split()[0]
        by_rule.setdefault(rule, []).append(row)
        assert row[attempts_end - 1] == "1" and row[attempts_end - 2] == " "  # right-aligned
    assert len(by_rule["eps-miss"]) == 2 and len(by_rule["lumn-cheap"]) == 1
    for row in by_rule["eps-miss"]:
        assert row[channel_at:].startswith("hook (webhook)")
        assert row[status_at:].startswith("delivered ")
        assert "missed: EPS" in row
    cheap = by_rule["lumn-cheap"][0]
    assert cheap[header.index("SYMBOL") :].startswith("LUMN ")
    assert cheap[channel_at:].startswith("gone (webhook)")
    assert cheap[status_at:].startswith("dead ")
    assert "HTTP 404: no such hook" in cheap
    assert_no_secret(output(result))


def test_history_json_and_filters(ran_once: tuple[Path, Receiver, Receiver]) -> None:
    folder, _hook, _gone = ran_once
    result = earnwatch("history", "--json", cwd=folder)
    assert result.returncode == 0, output(result)
    entries = json.loads(result.stdout)
    assert sorted((e["rule"], e["symbol"]) for e in entries) == [
        ("eps-miss", "LUMN"),
        ("eps-miss", "PLTR"),
        ("lumn-cheap", "LUMN"),
    ]
    for entry in entries:
        (delivery,) = entry["deliveries"]
        assert delivery["attempts"] == 1
        if entry["rule"] == "eps-miss":
            assert delivery["channel"] == "hook" and delivery["status"] == "delivered"
            assert delivery["delivered_at"] and delivery["last_error"] is None
        else:
            assert delivery["status"] == "dead" and delivery["delivered_at"] is None
    lumn = next(e for e in entries if e["rule"] == "eps-miss" and e["symbol"] == "LUMN")
    assert lumn["message"] == "LUMN missed: EPS -0.3 vs -0.21" and lumn["report"] == "2025Q4"
    assert_no_secret(output(result))

    def rules_of(*args: str) -> list[tuple[str, str]]:
        run = earnwatch("history", "--json", *args, cwd=folder)
        assert run.returncode == 0, output(run)
        assert_no_secret(output(run))
        return sorted((e["rule"], e["symbol"]) for e in json.loads(run.stdout))

    assert rules_of("--rule", "eps-miss") == [("eps-miss", "LUMN"), ("eps-miss", "PLTR")]
    assert rules_of("--status", "dead") == [("lumn-cheap", "LUMN")]
    assert rules_of("--status", "delivered", "--rule", "lumn-cheap") == []
    assert len(rules_of("--limit", "1")) == 1
    assert rules_of("--rule", "nope") == []

    text = earnwatch("history", "--status", "dead", cwd=folder)
    assert text.returncode == 0 and len(text.stdout.strip().splitlines()) == 3
    assert "lumn-cheap" in text.stdout and "eps-miss" not in text.stdout
    assert earnwatch("history", "--rule", "nope", cwd=folder).stdout.strip() == "no alerts yet"
    bad = earnwatch("history", "--status", "lost", cwd=folder)
    assert bad.returncode == 2 and "unknown status 'lost'" in bad.stderr


def test_history_before_any_run(tmp_path: Path) -> None:
    write_env(tmp_path)
    result = earnwatch("history", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == "no alerts yet"


# --- calendar ----------------------------------------------------------------------------


def calendar_folder(folder: Path, finnhub: FakeFinnhub) -> None:
    finnhub.set_event(**LUMN_MISSED)
    finnhub.set_event(**EQIX_UPCOMING)
    finnhub.set_event(**{**EQIX_UPCOMING, "symbol": "MSFT"})  # not watched: not shown
    (folder / "rules.yaml").write_text(CALENDAR_RULES)
    write_env(folder, "FINNHUB_API_KEY=test-finnhub-key", f"FINNHUB_BASE_URL={finnhub.base_url}")


def test_calendar_shows_estimates_and_the_reported_surprise(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    calendar_folder(tmp_path, finnhub)
    result = earnwatch("calendar", "--days", "14", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    lines = result.stdout.rstrip("\n").splitlines()
    assert lines[0].split() == [
        "DATE",
        "TIME",
        "SYMBOL",
        "PERIOD",
        "EPS",
        "EST",
        "EPS",
        "ACT",
        "EPS",
        "SURP",
        "REV",
        "EST",
        "REV",
        "ACT",
        "REV",
        "SURP",
        "EPS",
        "LATEST",
        "MOVED",
        "FROM",
    ]
    assert len(lines) == 4  # header, rule, LUMN, EQIX (sorted by date)
    lumn, eqix = lines[2].split(), lines[3].split()
    assert lumn == [
        TODAY.isoformat(),
        "amc",
        "LUMN",
        "2025Q4",
        "-0.21",
        "-0.3",
        "-42.9%",
        "3.08B",
        "3.041B",
        "-1.3%",
    ], lines[2]
    assert eqix == [
        (TODAY + timedelta(days=5)).isoformat(),
        "bmo",
        "EQIX",
        "2025Q4",
        "8.5",
        "2.35B",
    ], lines[3]
    assert "MSFT" not in result.stdout
    assert finnhub.count("/calendar/earnings") >= 1
    assert_no_secret(output(result))


def test_calendar_json(tmp_path: Path, finnhub: FakeFinnhub) -> None:
    calendar_folder(tmp_path, finnhub)
    result = earnwatch("calendar", "--json", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    rows = {r["symbol"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"LUMN", "EQIX"}
    assert rows["LUMN"]["eps_actual"] == -0.3 and rows["LUMN"]["eps_estimate"] == -0.21
    assert rows["LUMN"]["eps_surprise_pct"] == pytest.approx(-42.857, abs=0.01)
    assert rows["LUMN"]["fiscal_period"] == "2025Q4" and rows["LUMN"]["time"] == "amc"
    assert rows["EQIX"]["eps_actual"] is None and rows["EQIX"]["eps_surprise_pct"] is None
    assert rows["EQIX"]["revenue_estimate"] == 2350000000


def test_calendar_outside_the_window_shows_nothing(tmp_path: Path, finnhub: FakeFinnhub) -> None:
    calendar_folder(tmp_path, finnhub)
    result = earnwatch("calendar", "--days", "3", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "EQIX" not in result.stdout and "LUMN" in result.stdout  # LUMN reported today


# --- run --once: refusals ------------------------------------------------------------------


def test_run_once_with_an_invalid_rule_file_exits_2_naming_each_problem(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    (tmp_path / "rules.yaml").write_text(
        HOOK_RULES.replace("eps_actual < eps_estimate", "eps_actul < eps_estimate")
        + "  - name: bad-cooldown\n    symbols: [LUMN]\n    when: price > 1\n"
        "    cooldown: 10 minutes\n"
    )
    write_env(
        tmp_path,
        "FINNHUB_API_KEY=test-finnhub-key",
        f"FINNHUB_BASE_URL={finnhub.base_url}",
        "HOOK_URL=http://127.0.0.1:9/hook-s3cr3t",
    )
    result = earnwatch("run", "--once", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 2, output(result)
    problems = re.findall(r"rules\.yaml:(\d+):(\d+): (.*)$", output(result), re.MULTILINE)
    assert [int(line) for line, _col, _message in problems] == [9, 14], output(result)
    assert "unknown name 'eps_actul'" in problems[0][2]
    assert "invalid duration '10 minutes'" in problems[1][2]
    assert "cannot start: the rule file has 2 problem(s)" in output(result)
    assert finnhub.requests == []  # refused before any provider call
    assert_no_secret(output(result))


def test_run_once_without_the_finnhub_key_exits_2_with_one_line(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    (tmp_path / "rules.yaml").write_text(HOOK_RULES)
    write_env(tmp_path, f"FINNHUB_BASE_URL={finnhub.base_url}", "HOOK_URL=http://127.0.0.1:9/h")
    result = earnwatch("run", "--once", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 2, output(result)
    naming = [line for line in output(result).splitlines() if "FINNHUB_API_KEY" in line]
    assert len(naming) == 1, output(result)
    assert naming[0].endswith("FINNHUB_API_KEY: required when EARNWATCH_PROVIDERS lists finnhub")
    assert finnhub.requests == []
    assert_no_secret(output(result))


def test_run_once_with_nothing_to_report_exits_0_and_sends_nothing(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    finnhub.set_event(**{**LUMN_MISSED, "epsActual": None, "revenueActual": None})
    (tmp_path / "rules.yaml").write_text(HOOK_RULES)
    with Receiver() as receiver:
        write_env(
            tmp_path,
            "FINNHUB_API_KEY=test-finnhub-key",
            f"FINNHUB_BASE_URL={finnhub.base_url}",
            f"HOOK_URL={receiver.url_for(SECRET_PATH)}",
        )
        result = earnwatch("run", "--once", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert receiver.requests == []
    assert finnhub.count("/calendar/earnings") >= 1
    assert_no_secret(output(result))


def test_history_with_an_unreachable_database_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "EARNWATCH_DATABASE_URL=postgresql+psycopg://u:pw-s3cr3t@127.0.0.1:1/earnwatch\n"
    )
    result = earnwatch("history", cwd=tmp_path)
    assert "cannot open the database" in output(result)
    assert_no_secret(output(result))
    assert result.returncode != 0 and result.stdout == ""


NTFY_RULES = """\
channels:
  phone:
    type: ntfy
    url: "${NTFY_URL}"
    token: "${NTFY_TOKEN}"
    priority: 4
    tags: [chart_with_downwards_trend]
rules:
  - name: miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [phone]
"""
NTFY_TOKEN = "tk_s3cr3tNtfyAccessToken0000"
NTFY_UNAUTHORIZED = Reply(
    401,
    b'{"code":40101,"http":401,"error":"unauthorized",'
    b'"link":"https://ntfy.sh/docs/publish/#authentication"}',
    {"Content-Type": "application/json"},
)
NTFY_PUBLISHED = Reply(
    200,
    b'{"id":"sPs71M8A2T","time":1770152700,"event":"message","topic":"t"}',
    {"Content-Type": "application/json"},
)


@pytest.mark.parametrize(
    ("reply", "code", "expected"),
    [
        (NTFY_PUBLISHED, 0, "phone (ntfy): delivered"),
        (
            NTFY_UNAUTHORIZED,
            1,
            "phone (ntfy): failed (permanent): http://127.0.0.1:{port}/***: "
            "HTTP 401: unauthorized (40101)",
        ),
    ],
)
def test_test_notify_through_an_ntfy_channel_sends_one_request(
    tmp_path: Path, reply: Reply, code: int, expected: str
) -> None:
    (tmp_path / "rules.yaml").write_text(NTFY_RULES)
    with Receiver(default=reply) as receiver:
        write_env(tmp_path, f"NTFY_URL={receiver.url_for(SECRET_PATH)}", f"NTFY_TOKEN={NTFY_TOKEN}")
        result = earnwatch("test-notify", "phone", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == code, output(result)
    text = (result.stdout if code == 0 else result.stderr).strip()
    assert text == expected.format(port=receiver.port)
    assert len(receiver.requests) == 1  # one attempt: test-notify never retries
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", SECRET_PATH)
    assert request.headers["authorization"] == f"Bearer {NTFY_TOKEN}"
    assert (request.headers["priority"], request.headers["tags"]) == (
        "4",
        "chart_with_downwards_trend",
    )
    assert request.body.decode().endswith("\n\nprice: 7.56")
    assert_no_secret(output(result))


TG_TOKEN = "123456789:AAtgS3cr3tToken_0123456789abcdef"
TG_RULES = """\
channels:
  desk:
    type: telegram
    bot_token: "${TG_TOKEN}"
    chat_id: -1001234567890
    api_url: "${TG_API}"
rules:
  - name: miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [desk]
"""


def bot_api(status: int, description: str = "") -> Reply:
    """The Bot API's reply: `{"ok": true, "result": ...}`, or `ok: false` with its words."""
    if status == 200:
        body = {"ok": True, "result": {"message_id": 7, "chat": {"id": -1001234567890}}}
    else:
        body = {"ok": False, "error_code": status, "description": description}
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("reply", "code", "expected"),
    [
        (bot_api(200), 0, "desk (telegram): delivered"),
        (
            bot_api(400, "Bad Request: chat not found"),
            1,
            "desk (telegram): failed (permanent): Telegram 127.0.0.1:{port}: HTTP 400: "
            "Bad Request: chat not found",
        ),
    ],
)
def test_test_notify_of_a_telegram_channel_sends_one_sendmessage(
    tmp_path: Path, reply: Reply, code: int, expected: str
) -> None:
    (tmp_path / "rules.yaml").write_text(TG_RULES)
    with Receiver(default=reply) as receiver:
        write_env(tmp_path, f"TG_TOKEN={TG_TOKEN}", f"TG_API={receiver.url}")
        result = earnwatch("test-notify", "desk", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == code, output(result)
    text = (result.stdout if code == 0 else result.stderr).strip()
    assert text == expected.format(port=receiver.port)
    assert (result.stderr if code == 0 else result.stdout) == ""
    [request] = receiver.requests  # one attempt: test-notify never retries
    assert request.path == f"/bot{TG_TOKEN}/sendMessage"
    body = json.loads(request.body)
    assert body["chat_id"] == -1001234567890 and "parse_mode" not in body
    assert body["text"].startswith("TEST · earnwatch test-notify (desk)\n")
    assert body["text"].endswith("\n\nprice: 7.56")
    assert TG_TOKEN.split(":")[1] not in output(result)
    assert_no_secret(output(result))
