"""The fast read of a plain rule file (`yamlpos._fast_parse`) gives the very data of the
full parse, and the positions it builds on demand are the full parse's (issue #16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.rules.yamlpos import parse, parse_with_positions

ROOT = Path(__file__).resolve().parent.parent.parent
FILES = sorted(
    [
        *ROOT.joinpath("tests/rules/testdata").glob("*.yaml"),
        *ROOT.joinpath("examples").rglob("*.yaml"),
    ]
)
ENV = {"WEBHOOK_URL": "https://hooks.example.com/x", "TOKEN": "t"}

PLAIN = """\
version: 1
channels:
  hook: {type: webhook, url: "https://example.com/${TOKEN}"}
groups:
  chips: [NVDA, AMD, "on"]
defaults:
  notify: [hook]
  for: 5m
rules:
  - name: r1
    symbols: chips
    when: price > 5 and change_pct < -2.5
    enabled: yes
    cooldown: 1h
  - name: r2
    symbols: [ON, NO, 0700, 1e3]
    when: 'not reported and hours_to_earnings <= 24'
    message: |
      {{ symbol }} reports in {{ hours_to_earnings | round }} h
    description:
    urgent: false
"""

NOT_PLAIN = {
    "an alias": "a: &x [1]\nb: *x\n",
    "a tag": "a: !!str 5\n",
    "a merge key": "base: &b {x: 1}\nc:\n  <<: *b\n",
    "a duplicate key": "a: 1\na: 2\n",
    "an unset variable": "a: ${NOT_SET}\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "invalid YAML": "a: [1\n",
    "a date key": "2026-01-01: x\n",
    "deep nesting": "a: " + "[" * 70 + "]" * 70 + "\n",
    "a root scalar": "just text\n",
    "nothing": "# only a comment\n",
}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_example_reads_the_same_fast_or_not(path: Path) -> None:
    text = path.read_text()
    fast, full = parse(text, ENV), parse_with_positions(text, ENV)
    assert (fast.data, fast.problems, fast.plain, fast.fatal) == (
        full.data,
        full.problems,
        full.plain,
        full.fatal,
    )


def test_a_plain_file_is_read_fast_and_its_positions_are_built_on_demand() -> None:
    fast, full = parse(PLAIN, ENV), parse_with_positions(PLAIN, ENV)
    assert fast.positions is not None and not fast.values  # no table until asked
    assert fast.data == full.data and fast.plain == full.plain and not fast.problems
    assert fast.data["groups"]["chips"] == ["NVDA", "AMD", "on"]
    assert fast.data["channels"]["hook"]["url"] == "https://example.com/t"
    for path in [("rules", 0), ("rules", 1), ("rules",), ()]:
        assert fast.line(path) == full.where(path).line
    assert fast.where(("rules", 1, "symbols", 2)) == full.where(("rules", 1, "symbols", 2))
    assert fast.positions is None and fast.values == full.values and fast.keys == full.keys


@pytest.mark.parametrize("text", NOT_PLAIN.values(), ids=list(NOT_PLAIN))
def test_anything_else_goes_through_the_full_parse(text: str) -> None:
    doc, full = parse(text, ENV), parse_with_positions(text, ENV)
    assert doc.positions is None  # read with its positions at once
    assert (doc.data, doc.problems, doc.fatal) == (full.data, full.problems, full.fatal)
