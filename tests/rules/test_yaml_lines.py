"""The line reader of the plainest rule files (`yamllines.read`, issue #16) gives exactly
what libyaml's reads give (`yamlpos._fast_parse`, the full parse), or gives up."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from service.rules.yamllines import read
from service.rules.yamlpos import _fast_parse, parse, parse_with_positions

ROOT = Path(__file__).resolve().parent.parent.parent
FILES = sorted(
    [
        *ROOT.joinpath("tests/rules/testdata").glob("*.yaml"),
        *ROOT.joinpath("examples").rglob("*.yaml"),
    ]
)
ENV = {"T": "tok", "E": ""}
#: Values a line may hold: what reads plainly, and what looks close to it but does not.
SCALARS = [
    "1",
    "-5",
    "0700",
    "1e3",
    "1.5",
    ".5",
    "-.5",
    ".inf",
    "-.inf",
    ".nan",
    "~",
    "null",
    "Null",
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "n",
    "true",
    "False",
    "2026-01-01",
    "2026-13-45",
    "2026-01-01 10:00:00",
    "price > 5",
    "a: b",
    "a:b",
    "x [1] {2}, 3",
    "(x)",
    "+5",
    "+",
    "$HOME",
    "${T}",
    "${T:-d}",
    "${E:-d}",
    "${MISSING}",
    "$$x",
    "a$b",
    "'q'",
    '"q"',
    '"a\\"b"',
    '"a\\tb"',
    "'it''s'",
    "a'b",
    'a"b',
    "...",
    "---",
    "=",
    "<<",
    "x:",
    "_x",
    "TRUE",
    "0x1F",
    "0o17",
    "0b101",
    "1_000",
    "12:30",
    "1:20:30",
    "190:20:30",
    "- x",
    "-",
    "-x",
    "?x",
    "? x",
    "!x",
    "!!str x",
    "&x",
    "*x",
    "%x",
    "@x",
    "`x",
    "|",
    ">",
    "#c",
    "a #c",
    "a#b",
    "[a, b]",
    "[]",
    "[ ]",
    "[a,,b]",
    "[a, [b]]",
    "[on, 0700, 1e3, ~]",
    "[\"a\", 'b', c d]",
    "[x:y]",
    "[a, b,]",
    "[a, b",
    "{a: 1}",
    "{}",
    "5 .real",
    "a  b",
    "x\\y",
    "not reported and hours_to_earnings <= 24",
    "abs(change_pct) >= 7 or x",
    'earnings_time in ["bmo", "amc"]',
    "min(a, b) > 3",
    "eps_actual<eps_estimate",
    "S00001",
    "BRK.B",
    "-1e400",
    "1" + "0" * 30,
    "0.",
    "00.5",
    "01",
    "-0",
    "+.5",
    "~x",
    ".x",
]
KEYS = ["name", "symbols", "when", "on", "yes", "null", "x_y", "a.b", "for", "_k", "k-1"]


def value(rng: random.Random) -> str:
    return rng.choice(SCALARS)


def block(rng: random.Random, indent: int, depth: int) -> list[str]:
    """A random block mapping's lines at `indent`."""
    out: list[str] = []
    step = rng.choice([1, 2, 2, 2, 4])
    extra = [rng.choice(KEYS)] if rng.random() < 0.05 else []  # a duplicate key, maybe
    for key in rng.sample(KEYS, rng.randint(1, 4)) + extra:
        pad = " " * indent
        sep = rng.choice([" ", " ", "  "])
        roll = rng.random()
        if depth < 3 and roll < 0.2:
            out.append(f"{pad}{key}:")
            out += block(rng, indent + step, depth + 1)
        elif depth < 3 and roll < 0.4:
            out.append(f"{pad}{key}:")
            for _ in range(rng.randint(1, 3)):
                dash = " " * (indent + rng.choice([0, step, step])) + rng.choice(["- ", "-  "])
                if rng.random() < 0.5:
                    out.append(dash + value(rng))
                else:
                    inner = block(rng, len(dash), depth + 1)
                    out.append(dash + inner[0].lstrip(" "))
                    out += inner[1:]
        elif roll < 0.45:
            out.append(f"{pad}{key}:")
        else:
            out.append(f"{pad}{key}:{sep}{value(rng)}{rng.choice(['', '', ' '])}")
        if rng.random() < 0.1:
            out.append(rng.choice(["", "   ", "# note", "    # note", "#"]))
    return out


def document(rng: random.Random) -> str:
    lines = block(rng, 0, 0)
    if rng.random() < 0.3:
        lines = ["version: 1", "rules:"] + [
            line
            for i in range(rng.randint(1, 3))
            for line in [f"  - name: r{i}", "    symbols: [A, B]", f"    when: {value(rng)}"]
        ]
    return "\n".join(lines) + rng.choice(["\n", "", "\n\n"])


def same_as_libyaml(text: str, env: dict[str, str] | None) -> bool:
    """Whether `read` gave up, or gave what libyaml's reads give. Returns whether it read."""
    lines = read(text, env)
    if lines is None:
        return False
    fast = _fast_parse(text, env, ())
    full = parse_with_positions(text, env)
    assert fast is not None, text  # a text read here has nothing the fast parse refuses
    assert (lines.data, lines.plain, lines.lines) == (fast.data, fast.plain, fast.lines), text
    assert (lines.data, lines.plain, lines.problems, lines.fatal) == (
        full.data,
        full.plain,
        full.problems,
        full.fatal,
    ), text
    return True


def test_generated_files_read_as_libyaml_reads_them_or_not_at_all() -> None:
    rng = random.Random(16)
    read_ = 0
    for _ in range(4000):
        text = document(rng)
        read_ += same_as_libyaml(text, rng.choice([ENV, None]))
    assert read_ > 800  # the generator makes many files the reader takes


@pytest.mark.parametrize("scalar", SCALARS)
def test_each_value_reads_as_libyaml_reads_it_or_not_at_all(scalar: str) -> None:
    for text in (f"a: {scalar}\n", f"a:\n  - {scalar}\n", f"a: [{scalar}]\n"):
        same_as_libyaml(text, ENV)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_example_reads_the_same(path: Path) -> None:
    same_as_libyaml(path.read_text(), ENV)


def test_the_bench_file_is_read_by_lines_and_its_positions_come_on_demand() -> None:
    text = "version: 1\nrules:\n" + "".join(
        f"  - name: r{i}\n    symbols: [S{i:05d}]\n    when: price > {i}.5\n" for i in range(50)
    )
    assert same_as_libyaml(text, ENV)
    doc = parse(text, ENV)
    assert doc.positions is not None and doc.line(("rules", 3)) == 12
    assert doc.where(("rules", 3, "when")) == parse_with_positions(text, ENV).where(
        ("rules", 3, "when")
    )


@pytest.mark.parametrize(
    "text",
    [
        "a: 1 # note\n",
        "a: |\n  x\n",
        "a:\n- x\n",
        "a: x\n  y\n",
        "a: \u00e9\n",
        "a:\tx\n",
        "a: x\x01\n",
        "a: x\x7f\n",
        "a: x\r\n",
        "---\na: 1\n",
        "  a: 1\n",
        "a: ${MISSING}\n",
        "a: 1\na: 2\n",
        "a:\n  - x\n  b: 1\n",
        "a:\n  - x\n - y\n",
    ],
)
def test_anything_else_is_left_to_libyaml(text: str) -> None:
    assert read(text, ENV) is None


def test_a_file_read_in_small_chunks_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk ends at a line's end, so every line is read whole, once, with its number."""
    from service.rules import yamllines

    monkeypatch.setattr(yamllines, "_CHUNK", 7)
    rng = random.Random(61)
    assert sum(same_as_libyaml(document(rng), ENV) for _ in range(600)) > 100
