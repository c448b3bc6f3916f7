"""`earnwatch check` and `earnwatch schema` as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

TESTDATA = Path(__file__).parent / "rules" / "testdata"


def earnwatch(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path(__file__).parent.parent),
            **(env or {}),
        },
    )


def test_check_names_all_three_mistakes_with_their_lines(tmp_path: Path) -> None:
    target = tmp_path / "rules.yaml"
    target.write_text(
        (TESTDATA / "bad_three.yaml").read_text().replace("type: webhook", "type: webhook")
    )
    result = earnwatch("check", str(target), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(": ")[0].rsplit(":", 2)[1:] for line in lines[:3]] == [
        ["9", "24"],
        ["14", "14"],
        ["18", "10"],
    ]
    assert "unknown name 'eps_actul'" in lines[0]
    assert "undefined channel 'team-slack'" in lines[1]
    assert "invalid duration '10 minutes'" in lines[2]
    assert "Traceback" not in result.stderr


def test_check_prints_a_one_line_summary_for_a_valid_file(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - name: r\n    symbols: [LUMN, PLTR]\n    when: price > 7.56\n"
    )
    result = earnwatch("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "rules.yaml: OK: 1 rule, 2 symbols, 0 channels"
    # ...and one line of what the rule set costs (issue 12.4).
    assert result.stdout.splitlines()[1].startswith("budget: finnhub: 2/min of 58/min")
    assert len(result.stdout.splitlines()) == 2


def test_check_budget_shows_each_provider_and_a_daily_limit_exceeded(tmp_path: Path) -> None:
    symbols = ", ".join(f"S{i:03d}" for i in range(150))
    (tmp_path / "rules.yaml").write_text(
        f"rules:\n  - name: r\n    symbols: [{symbols}]\n    when: price > 7.56\n"
    )
    (tmp_path / ".env").write_text("EARNWATCH_PROVIDERS=fmp,finnhub\n")
    result = earnwatch("check", "--budget", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()[1:]
    assert lines[0] == (
        "fmp: 2/min of 300/min at the open, 976/day of 250/day: OVER the daily limit; "
        "set EARNWATCH_PRICE_POLL to at least 14.4 min"
    )
    assert lines[1].startswith("finnhub (failover, if it served every call): 150/min of 58/min")
    # FMP carries the calendar first; the trading day already fills its 250
    assert lines[2].startswith("report windows (fmp): 1 call(s) every EARNWATCH_EARNINGS_POLL")
    assert lines[2].endswith("; no room left in fmp's daily limit")
    assert "0 stream" in lines[3] and lines[-1] == "worst price age, polled: 23.2 min"


def test_check_reads_variables_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("THRESHOLD=7.56\n")
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - name: r\n    symbols: LUMN\n    when: price > ${THRESHOLD}\n"
    )
    assert earnwatch("check", "r.yaml", cwd=tmp_path).returncode == 0
    (tmp_path / ".env").write_text("")
    result = earnwatch("check", "r.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "environment variable THRESHOLD is not set" in result.stderr


def test_check_of_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    result = earnwatch("check", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip() == "nope.yaml: cannot read the rule file: No such file or directory"
    )


@pytest.mark.parametrize("name", ["good.yaml"])
def test_schema_is_json_schema_that_describes_the_file(tmp_path: Path, name: str) -> None:
    result = earnwatch("schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["title"] == "Earnwatch rule file"
    rule = schema["$defs"]["RuleModel"]
    assert {"name", "symbols", "when", "clear_when", "for", "cooldown", "notify", "message"} <= set(
        rule["properties"]
    )
    assert rule["additionalProperties"] is False
    assert "discord channel" in [
        c["title"] for c in schema["properties"]["channels"]["additionalProperties"]["oneOf"]
    ]


def test_check_takes_the_rule_file_as_rules_too(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"
    )
    result = earnwatch("check", "--rules", "r.yaml", cwd=tmp_path)
    assert (
        result.returncode == 0
        and result.stdout.splitlines()[0] == "r.yaml: OK: 1 rule, 1 symbol, 0 channels"
    )


NTFY_RULES = """\
channels:
  phone:
    type: ntfy
    url: {url}
    priority: {priority}
rules:
  - name: r
    symbols: [LUMN]
    when: price > 1
    notify: [phone]
"""


def test_check_accepts_an_ntfy_channel_and_schema_shows_it(tmp_path: Path) -> None:
    rules = NTFY_RULES.format(url="https://ntfy.sh/my-earnings", priority=4)
    (tmp_path / "r.yaml").write_text(rules)
    result = earnwatch("check", "r.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "r.yaml: OK: 1 rule, 1 symbol, 1 channel"
    schema = earnwatch("schema", cwd=tmp_path).stdout
    assert {"const": "ntfy"} in [
        kind["properties"]["type"]
        for kind in json.loads(schema)["properties"]["channels"]["additionalProperties"]["oneOf"]
    ]


@pytest.mark.parametrize(
    ("url", "priority", "where", "problem"),
    [
        (
            "http://169.254.169.254/my-earnings",
            4,
            "4:10: channels.phone.url",
            "refused target '169.254.169.254'",
        ),
        ("https://ntfy.sh/my-earnings", 9, "5:15: channels.phone.priority", "from 1 (min) to 5"),
    ],
)
def test_check_refuses_an_ntfy_ssrf_url_or_priority_at_its_line(
    tmp_path: Path, url: str, priority: int, where: str, problem: str
) -> None:
    (tmp_path / "r.yaml").write_text(NTFY_RULES.format(url=url, priority=priority))
    result = earnwatch("check", "r.yaml", cwd=tmp_path)
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"r.yaml:{where}: ") and problem in first, first
    assert "my-earnings" not in result.stderr and "Traceback" not in result.stderr


TELEGRAM_RULES = """\
channels:
  desk:
    type: telegram
    bot_token: "123456789:AAtgS3cr3tToken_0123456789abcdef"
    chat_id: "@earnings_desk"
    api_url: API_URL
rules:
  - name: r
    symbols: [LUMN]
    when: price > 1
    notify: [desk]
"""


def test_check_accepts_a_telegram_channel_and_refuses_an_ssrf_api_url_at_its_line(
    tmp_path: Path,
) -> None:
    schema = json.loads(earnwatch("schema", cwd=tmp_path).stdout)
    assert "telegram channel" in [
        c["title"] for c in schema["properties"]["channels"]["additionalProperties"]["oneOf"]
    ]
    (tmp_path / "good.yaml").write_text(
        TELEGRAM_RULES.replace("API_URL", "https://api.telegram.org")
    )
    good = earnwatch("check", "good.yaml", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines()[0] == "good.yaml: OK: 1 rule, 1 symbol, 1 channel"
    (tmp_path / "bad.yaml").write_text(TELEGRAM_RULES.replace("API_URL", "http://169.254.169.254"))
    bad = earnwatch("check", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 1
    first = bad.stderr.splitlines()[0]
    assert first.startswith("bad.yaml:6:14: channels.desk.api_url: "), first
    assert "refused target '169.254.169.254'" in first
    assert "S3cr3t" not in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "token.yaml").write_text(
        TELEGRAM_RULES.replace("API_URL", "https://api.telegram.org").replace(
            "0123456789abcdef", "S3cr3t/../getMe"
        )
    )
    token = earnwatch("check", "token.yaml", cwd=tmp_path)
    assert token.returncode == 1
    assert token.stderr.startswith("token.yaml:4:"), token.stderr
    assert "bot_token" in token.stderr and "S3cr3t" not in token.stdout + token.stderr
