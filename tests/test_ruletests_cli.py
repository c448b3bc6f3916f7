"""`earnwatch test FILE...` as a user runs it: the shipped example passes, a wrong
expectation fails with a diff, an invalid file is named by line and column."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from tests.test_cli import earnwatch

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


def _examples(tmp_path: Path) -> Path:
    for name in ("rules.yaml", "rules_test.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / "rules_test.yaml"


def test_the_example_rule_file_is_the_readmes() -> None:
    # CI checks the README's block (`.ci/run`); the example must be that very text.
    assert (EXAMPLES / "rules.yaml").read_text() == _readme_block("## The rule file", "yaml")


def test_the_shipped_example_passes(tmp_path: Path) -> None:
    result = earnwatch("test", "examples/rules_test.yaml", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "ok    LUMN's miss alerts once, when the figures are published",
        "ok    above the target, re-armed only below 7.40, never twice within the 4h cooldown",
        "ok    a post-earnings drop must hold 10 minutes without a break",
        "3 test(s): 3 passed, 0 failed",
    ]
    assert result.stderr == ""


def test_a_wrong_expectation_fails_with_a_readable_diff(tmp_path: Path) -> None:
    target = _examples(tmp_path)
    text = target.read_text()
    wrong = text.replace("(-42.9%)", "(-40.0%)").replace("at: 17m", "at: 16m")
    assert wrong != text
    target.write_text(wrong)
    result = earnwatch("test", str(target), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    out = [line.strip() for line in result.stdout.splitlines()]
    assert out[0] == "FAIL  LUMN's miss alerts once, when the figures are published"
    assert out[1:4] == [
        "matched      0m  earnings-tomorrow  LUMN",
        '- expected    10m  lumn-q4-miss  LUMN "LUMN missed: EPS -0.3 vs -0.21 (-40.0%)"',
        '+ got         10m  lumn-q4-miss  LUMN "LUMN missed: EPS -0.3 vs -0.21 (-42.9%)"',
    ]
    assert out[4].startswith("ok    above the target")
    assert out[5] == "FAIL  a post-earnings drop must hold 10 minutes without a break"
    assert out[6] == "- expected    16m  post-earnings-drop  PLTR"
    assert out[7].startswith(
        '+ got         17m  post-earnings-drop  PLTR "PLTR: post-earnings-drop'
    )
    assert out[-1] == "3 test(s): 1 passed, 2 failed"
    assert "Traceback" not in result.stderr


def test_an_invalid_test_file_exits_2_with_its_places(tmp_path: Path) -> None:
    target = _examples(tmp_path)
    text = target.read_text()
    bad = text.replace('price: "7.50x4"', 'price: "7.50x4 7.5O"').replace(
        "interval: 30m", "interval: 30m\n    colour: red"
    )
    target.write_text(bad)
    result = earnwatch("test", str(target), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        f"{target}:13:24: tests[0].series.LUMN.price: '7.5O' is not a value: write a number, "
        "_ (unknown) or VALUExN (the value N times, e.g. 7.5x3)",
        f"{target}:26:5: tests[1].colour: unknown key 'colour'",
    ]
    assert result.stdout == ""


def test_an_invalid_rule_file_exits_2_with_its_own_errors(tmp_path: Path) -> None:
    target = _examples(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules.read_text().replace("price > 7.56", "prise > 7.56"))
    result = earnwatch("test", str(target), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"{rules}:")
    assert "unknown name 'prise'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_expectation_naming_no_rule_is_an_error(tmp_path: Path) -> None:
    target = _examples(tmp_path)
    target.write_text(target.read_text().replace("rule: lumn-q4-miss", "rule: lumn-q4-mis"))
    result = earnwatch("test", str(target), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"{target}:21:9: expect: no rule 'lumn-q4-mis' in the rule files "
        "(did you mean 'lumn-q4-miss'?)"
    )


def test_a_missing_secret_is_named_unless_the_test_gives_it(tmp_path: Path) -> None:
    target = _examples(tmp_path)
    text = target.read_text()
    target.write_text(text.replace("  WEBHOOK_SECRET: whsec_", "  UNUSED: whsec_"))
    result = earnwatch("test", str(target), cwd=tmp_path)
    assert result.returncode == 2
    assert "environment variable WEBHOOK_SECRET is not set" in result.stderr
    # .env (or the environment) gives it, as for `check`
    (tmp_path / ".env").write_text("WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
    result = earnwatch("test", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_printed_schema_takes_the_example(tmp_path: Path) -> None:
    result = earnwatch("schema", "--tests", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    # As an editor sees the file: timestamps and dates as text.
    data = json.loads(
        json.dumps(yaml.safe_load((EXAMPLES / "rules_test.yaml").read_text()), default=str)
    )
    assert list(validator(schema).iter_errors(data)) == []
    data["tests"][0]["series"]["LUMN"]["price"] = 7.5  # `price: 7.5`: one value
    assert list(validator(schema).iter_errors(data)) == []
    data["tests"][0]["colour"] = "red"
    assert list(validator(schema).iter_errors(data))


AMENDED_RULES = """\
rules:
  - name: lumn-beat
    symbols: [LUMN]
    when: reported and eps_actual > eps_estimate
    notify_amended: true
"""
AMENDED_TESTS = """\
rule_files: [rules.yaml]
tests:
  - name: the corrected EPS sends one amended alert
    start: 2026-02-03T21:00:00Z
    interval: 5m
    earnings:
      LUMN:
        - date: 2026-02-03
          time: amc
          eps_estimate: -0.21
          eps_actual: 0.23
          published_at: 2026-02-03T21:05:00Z
          corrections:
            - {at: 15m, eps_actual: 0.25}
    series: {LUMN: {price: "7.5x5"}}
    expect:
      - {at: 5m, rule: lumn-beat, symbol: LUMN, kind: fired}
      - {at: 15m, rule: lumn-beat, symbol: LUMN, kind: amended}
"""


def test_a_correction_in_a_test_file_runs_and_its_schema_takes_it(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(AMENDED_RULES)
    (tmp_path / "amended_test.yaml").write_text(AMENDED_TESTS)
    result = earnwatch("test", "amended_test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "ok    the corrected EPS sends one amended alert",
        "1 test(s): 1 passed, 0 failed",
    ]
    # the amended alert is expected: without its line, it is one the test did not expect
    (tmp_path / "amended_test.yaml").write_text(AMENDED_TESTS.rsplit("      - ", 1)[0])
    result = earnwatch("test", "amended_test.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "+ got         15m  lumn-beat  LUMN  amended" in result.stdout
    schema = json.loads(earnwatch("schema", "--tests", cwd=tmp_path).stdout)
    validator = jsonschema.validators.validator_for(schema)(schema)
    data = json.loads(json.dumps(yaml.safe_load(AMENDED_TESTS), default=str))
    assert list(validator.iter_errors(data)) == []
    data["tests"][0]["expect"][1]["kind"] = "corrected"
    assert list(validator.iter_errors(data))


def _readme_block(heading: str, lang: str) -> str:
    return subprocess.run(
        [sys.executable, ".ci/readme_block.py", "README.md", heading, "1", lang],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_readmes_rule_tests_pass_and_fail_as_it_shows(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "rules.yaml", tmp_path / "rules.yaml")
    target = tmp_path / "rules_test.yaml"
    block = _readme_block("## Rule tests", "yaml")
    target.write_text(block)
    result = earnwatch("test", "rules_test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    target.write_text(block.replace("at: 5h", "at: 4h"))
    result = earnwatch("test", "rules_test.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.rstrip("\n") == _readme_block("## Rule tests", "text")


def test_the_contracts_example_passes_on_the_demos_rule_file(tmp_path: Path) -> None:
    # RULES.md's example as written: the demo's rule file takes DEMO_WEBHOOK_URL from the
    # environment, as `check` would.
    shutil.copy(ROOT / "service/data/demo/rules.yaml", tmp_path / "rules.yaml")
    shutil.copy(ROOT / "tests/ruletests_data/rules_md_test.yaml", tmp_path / "t.yaml")
    env = {"DEMO_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    result = earnwatch("test", "t.yaml", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "ok    falls through the median target once"
