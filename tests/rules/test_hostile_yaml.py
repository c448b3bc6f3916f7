"""Hostile and careless YAML: bounded time and memory, a problem at its place, never a
traceback (issue 9.4, 9.7)."""

import time
import tracemalloc

import pytest

from service.errors import RuleFileError
from service.rules.yamlcompose import compose
from tests.rules.conftest import load

RULE = "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"


def billion_laughs() -> str:
    text = 'version: 1\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghij":
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text + "rules: []\n"


def refused(text: str, bound: float = 5.0) -> list[str]:
    started = time.monotonic()
    with pytest.raises(RuleFileError) as info:
        load(text)
    assert time.monotonic() - started < bound  # not minutes, as before
    return info.value.lines()


def test_the_billion_laughs_is_refused_at_an_alias_quickly_and_in_little_memory() -> None:
    text = billion_laughs()
    assert len(text) < 450
    tracemalloc.start()
    try:
        lines = refused(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000  # it took 7 GB
    assert len(lines) == 1, lines
    assert lines[0].startswith("rules.yaml:7:8: YAML aliases: *e expands the file past 100,000")


def test_more_than_a_hundred_aliases_are_refused_at_the_hundred_and_first() -> None:
    items = ", ".join(["*s"] * 101)
    text = f"x: &s LUMN\ny: [{items}]\n{RULE}"
    lines = refused(text)
    col = len("y: [") + 1 + 100 * len("*s, ")
    assert lines == [
        f"rules.yaml:2:{col}: YAML aliases: more than 100 aliases (*name) in one file are refused"
    ]


def test_a_cycle_and_deep_nesting_are_refused_at_their_place() -> None:
    assert refused("a: &a [1, *a]\n" + RULE) == [
        "rules.yaml:1:11: YAML alias *a refers to itself (a cycle)"
    ]
    deep = "a: " + "[" * 200 + "]" * 200 + "\n" + RULE
    assert refused(deep) == ["rules.yaml:1:67: YAML nesting deeper than 64 levels is refused"]
    deeper = "a: " + "[" * 50_000 + "]" * 50_000 + "\n" + RULE  # libyaml's own limit
    assert refused(deeper)[0].startswith("rules.yaml:1:1003: YAML syntax error: exceeded maximum")


def test_a_duplicate_anchor_names_both_places() -> None:
    assert refused("groups:\n  a: &g [LUMN]\n  b: &g [PLTR]\n" + RULE) == [
        "rules.yaml:3:6: YAML syntax error: duplicate anchor 'g' (first defined at 2:6)"
    ]


def test_a_few_aliases_still_work_and_merge_keys_merge() -> None:
    text = (
        "groups:\n  g: &members [LUMN, PLTR]\n"
        "defaults:\n  notify: []\n"
        "rules:\n"
        "  - &base\n    name: base\n    symbols: *members\n    when: price > 1\n"
        "    cooldown: 1h\n"
        "  - <<: *base\n    name: derived\n    when: price > 2\n"
    )
    ruleset = load(text)
    derived = ruleset.rule("derived")
    assert derived is not None and derived.symbols == ("LUMN", "PLTR")
    assert derived.when.source == "price > 2" and derived.cooldown is not None


def test_a_mistake_in_a_merged_mapping_is_named_where_it_is_written() -> None:
    text = (
        "rules:\n  - &base\n    name: base\n    symbols: [LUMN]\n    when: price > 1\n"
        "    cooldown: 1 hour\n"
        "  - <<: *base\n    name: derived\n"
    )
    lines = refused(text)
    assert lines[0].startswith("rules.yaml:6:15: rules[0].cooldown: invalid duration '1 hour'")
    assert lines[1].startswith("rules.yaml:6:15: rules[1].cooldown: invalid duration '1 hour'")


def test_a_merge_key_of_a_scalar_is_refused_at_its_place() -> None:
    text = "groups:\n  g: [&s LUMN]\nrules:\n  - <<: *s\n    name: r\n    symbols: [LUMN]\n    when: price > 1\n"
    assert refused(text) == [
        "rules.yaml:4:9: rules[0]: `<<` merges a mapping (`<<: *name`) or a list of them "
        "(`<<: [*a, *b]`)"
    ]


@pytest.mark.parametrize(
    "tag",
    ["!!python/object/apply:os.system", "!!python/name:os.system", "!!binary", "!custom"],
)
def test_python_and_other_unknown_tags_are_refused_at_their_place(tag: str) -> None:
    text = f"rules:\n  - name: r\n    symbols: [LUMN]\n    when: {tag} price > 1\n"
    lines = refused(text)
    assert lines[0].startswith(f"rules.yaml:4:11: rules[0].when: unsupported YAML tag {tag}"), lines


def test_a_python_tag_on_a_mapping_is_refused() -> None:
    text = "groups: !!python/object:os.system {a: [LUMN]}\n" + RULE
    lines = refused(text)
    assert lines[0].startswith(
        "rules.yaml:1:9: groups: unsupported YAML tag !!python/object:os.system"
    ), lines


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-13-45", "cannot read '2026-13-45' as a date"),
        ("9" * 5000, "cannot read '" + "9" * 40 + "...' as a number"),
    ],
)
def test_values_pyyaml_cannot_build_are_problems(value: str, expected: str) -> None:
    text = f"rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n    enabled: {value}\n"
    lines = refused(text)
    assert lines[0].startswith(f"rules.yaml:5:14: rules[0].enabled: {expected}"), lines


def test_a_control_character_is_named_at_its_line_and_column() -> None:
    text = "rules:\n  - name: r\x01\n"
    assert refused(text) == [
        "rules.yaml:2:12: YAML: unacceptable character #x0001 (control characters are not allowed)"
    ]


@pytest.mark.parametrize(
    ("duration", "col"), [("99999999999999999999d", 15), ("1e400s", 15), ("9" * 400 + "s", 15)]
)
def test_a_huge_duration_is_a_problem_not_an_overflow(duration: str, col: int) -> None:
    lines = refused(RULE + f"    cooldown: {duration}\n")
    assert len(lines) == 1 and lines[0].startswith(f"rules.yaml:5:{col}: rules[0].cooldown: "), (
        lines
    )
    assert "duration" in lines[0]


def test_a_big_file_with_one_alias_is_not_refused() -> None:
    # The limit is on what aliases repeat, not on the size of the file (other limits
    # bound that): 120,000 values and one small alias compose.
    text = "big: [" + ", ".join(["1"] * 120_000) + "]\nx: &x [A, B]\ny: *x\n"
    root = compose(text)
    assert root is not None and len(root.value) == 3
