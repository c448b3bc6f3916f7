"""`earnwatch check` and `earnwatch schema` on `notify_amended` (issue #13, item 3), as a
user runs them: accepted on a rule that fires on a report, refused at its line on one
whose conditions read no earnings variable and on a digest rule, listed by the schema."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import earnwatch

GOOD = """\
rules:
  - name: lumn-miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify_amended: true
"""
PRICE = """\
rules:
  - name: lumn-above
    symbols: [LUMN]
    when: price > 7.56
    notify_amended: true
"""
DIGEST = """\
rules:
  - name: week-ahead
    symbols: [LUMN]
    digest: "0 8 * * mon"
    notify_amended: true
"""


def test_check_accepts_notify_amended_on_a_rule_that_reads_the_report(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(GOOD)
    result = earnwatch("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rules.yaml: OK: 1 rule, 1 symbol")


def test_check_refuses_notify_amended_on_a_price_rule_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(PRICE)
    result = earnwatch("check", cwd=tmp_path)
    assert result.returncode == 1
    line, summary = result.stderr.splitlines()
    assert summary == "rules.yaml: 1 problem(s)"
    assert line.startswith("rules.yaml:5:5: rules[0].notify_amended: ")
    assert "needs a rule that fires on a report" in line
    assert "Traceback" not in result.stderr


def test_check_refuses_notify_amended_on_a_digest_rule(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(DIGEST)
    result = earnwatch("check", cwd=tmp_path)
    assert result.returncode == 1
    assert "a digest rule has no `notify_amended:`" in result.stderr


def test_schema_lists_notify_amended(tmp_path: Path) -> None:
    result = earnwatch("schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    field = json.loads(result.stdout)["$defs"]["RuleModel"]["properties"]["notify_amended"]
    assert field["type"] == "boolean" and field["default"] is False
    assert "corrected" in field["description"]
