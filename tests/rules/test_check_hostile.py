"""`earnwatch check` on hostile and careless rule files, as a user runs it: exit 1 within
a generous bound, every line `PATH:LINE:COL: ...` (or `PATH: ...`), no traceback."""

import time
from pathlib import Path

import pytest

from tests.rules.test_hostile_yaml import billion_laughs
from tests.test_cli import earnwatch

RULE = "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"

HOSTILE = {
    "billion-laughs": (billion_laughs(), "r.yaml:7:8: YAML aliases: *e expands the file"),
    "python-tag": (
        "rules:\n  - name: r\n    symbols: [LUMN]\n    when: !!python/object/apply:os.system x\n",
        "r.yaml:4:11: rules[0].when: unsupported YAML tag !!python/object/apply:os.system",
    ),
    "merge-of-a-list": (
        "groups:\n  g: &g [LUMN]\n" + RULE + "    <<: *g\n",
        "r.yaml:7:9: rules[0]: `<<` merges a mapping",
    ),
    "huge-duration": (
        RULE + "    cooldown: 99999999999999999999d\n",
        "r.yaml:5:15: rules[0].cooldown: duration '99999999999999999999d' is too long",
    ),
    "bad-date": (RULE + "    description: 2026-13-45\n", "r.yaml:5:18: rules[0].description"),
    "dotless-i": (
        'rules:\n  - name: r\n    symbols: ["\u0131bm"]\n    when: price > 1\n',
        "r.yaml:3:15: rules[0].symbols[0]: '\u0131bm' is not a symbol",
    ),
    "fullwidth-name": (
        "rules:\n  - name: r\n    symbols: [IBM]\n    when: \uff50rice > 1\n",
        "r.yaml:4:11: rules[0].when: a condition is written in ASCII",
    ),
    "newline-in-channel-name": (
        'channels:\n  "a\\nINFO forged":\n    type: webhook\n    url: https://h.example/x\n' + RULE,
        "r.yaml:2:3: channels['a\\nINFO forged']: channel name 'a\\nINFO forged'",
    ),
    "empty": ("", "r.yaml: the rule file has no rules (an empty or truncated file?)"),
    "comments-only": ("# rules.yaml\n\n", "r.yaml: the rule file has no rules"),
    "cut-after-channels": (
        "channels:\n  h:\n    type: webhook\n    url: https://h.example/x\n",
        "r.yaml: the rule file has no rules",
    ),
    "rules-null": ("version: 1\nrules:\n", "r.yaml:2:1: rules: the rule file has no rules"),
}


@pytest.mark.parametrize(("text", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_check_refuses_a_hostile_file_with_its_place(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "r.yaml").write_text(text, encoding="utf-8")
    started = time.monotonic()
    result = earnwatch("check", "r.yaml", cwd=tmp_path)
    assert time.monotonic() - started < 30  # minutes and gigabytes before
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(expected), result.stderr


def test_check_warns_about_an_explicit_empty_rule_list_and_passes(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("version: 1\nrules: []\n")
    result = earnwatch("check", "r.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "r.yaml:2:1: warning: rules: the file has no rules (rules: []): "
        "Earnwatch runs, but nothing will alert"
    ]
    assert result.stdout.splitlines()[0] == "r.yaml: OK: 0 rules, 0 symbols, 0 channels"
