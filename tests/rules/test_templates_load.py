"""Message templates at load time: every hostile or mistaken template is one problem at its
PATH:LINE:COL, found within bounded time and memory, never a Jinja or Python exception."""

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from service.errors import RuleFileError
from tests.rules.conftest import load

ROOT = Path(__file__).resolve().parent.parent.parent


def rule_file(message: str) -> str:
    return (
        "version: 1\nrules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"
        f"    message: {message}\n"
    )


def problem_of(message: str) -> str:
    """The one problem of a rule file whose message is `message` (a YAML scalar)."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(RuleFileError) as info:
            load(rule_file(message))
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Generous bounds: today these run for 15-35 s and take 4-7.6 GB.
    assert elapsed < 10, elapsed
    assert peak < 50_000_000, peak
    lines = info.value.lines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            '"{% for i in [1]*10**7 %}{% endfor %}"',
            "rules.yaml:6:14: rules[0].message: the message breaks a limit: a repetition would "
            "be larger than 20,000 characters or items (20,000,000)",
        ),
        (
            "\"{{ 'x' * 10**9 }}\"",
            "rules.yaml:6:14: rules[0].message: the message breaks a limit: a repetition would "
            "be larger than 20,000 characters or items (1,000,000,000)",
        ),
        (
            '"{{ price|pct(10**8) }}"',
            "rules.yaml:6:14: rules[0].message: the message breaks a limit: pct() takes at most "
            "20 places, not 100,000,000",
        ),
        (
            '"{{ 2 ** 100000 }}"',
            "rules.yaml:6:14: rules[0].message: the message breaks a limit: a number would have "
            "more than 4096 bits",
        ),
        (
            '"{{ symbol.center(10**9) }}"',
            "rules.yaml:6:14: rules[0].message: the message breaks a limit: a padded string "
            "would be larger than 20,000 characters or items (1,000,000,000)",
        ),
        (
            "\"{{ '{:>1000000000}'.format(price) }}\"",
            "rules.yaml:6:14: rules[0].message: the message breaks a limit: a format width would "
            "be larger than 20,000 characters or items (1,000,000,000)",
        ),
        (
            "\"{{ '%0999999999d' % price }}\"",
            "rules.yaml:6:14: rules[0].message: the message breaks a limit: a % format width "
            "would be larger than 20,000 characters or items (999,999,999)",
        ),
        (
            '"{{ symbol|center(10**9) }} {{ [1]|batch(10**8, 0)|list }}"',
            "rules.yaml:6:14: rules[0].message: the message breaks a limit: a padded string "
            "would be larger than 20,000 characters or items (1,000,000,000)",
        ),
        (
            "\"{{ ('y' * 19990).join('x' * 19990) }}\"",
            "rules.yaml:6:14: rules[0].message: the message breaks a limit: a join would be "
            "larger than 20,000 characters or items (399,620,090)",
        ),
        (
            '"{% for a in [1]*1000 %}{% for b in [1]*1000 %}{{ a }}{% endfor %}{% endfor %}"',
            "rules.yaml:6:14: rules[0].message: the loops run 1,000,000 times, more than 100,000",
        ),
    ],
)
def test_a_template_that_breaks_a_bound_is_refused_at_load(message: str, expected: str) -> None:
    assert problem_of(message) == expected


@pytest.mark.parametrize("name", ["range", "lipsum", "cycler", "joiner", "namespace", "dict"])
def test_jinja_globals_are_unknown_names(name: str) -> None:
    assert problem_of(f'"{{{{ {name}(3) }}}}"') == (
        f"rules.yaml:6:14: rules[0].message: unknown name {name!r} in message (Jinja's cycler, "
        "dict, joiner, lipsum, namespace, range are not available here)"
    )


def test_lipsum_of_a_million_words_is_refused_quickly() -> None:
    assert "unknown name 'lipsum'" in problem_of('"{{ lipsum(10**6) }}"')


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('"{{ price | rond(2) }}"', "unknown filter 'rond' in message (did you mean 'round'?)"),
        # Jinja itself defers an unknown filter inside `if` to render time: not here.
        (
            '"{% if price %}{{ price|moeny }}{% endif %}"',
            "unknown filter 'moeny' in message (did you mean 'money'?)",
        ),
        (
            '"{% if price is nmber %}x{% endif %}"',
            "unknown test 'nmber' in message (did you mean 'number'?)",
        ),
        ("\"{% include 'x.txt' %}\"", "{% include %} is not available in a message"),
        (
            '"{{ price "',
            "template syntax error: unexpected end of template, expected 'end of print statement'.",
        ),
    ],
)
def test_template_mistakes_are_problems_with_their_place(message: str, expected: str) -> None:
    assert problem_of(message) == f"rules.yaml:6:14: rules[0].message: {expected}"


def test_a_filter_typo_on_a_later_line_of_a_block_message_names_that_line() -> None:
    text = rule_file("|\n      {{ symbol }} moved\n      now {{ price | rond(2) }}")
    with pytest.raises(RuleFileError) as info:
        load(text)
    assert info.value.lines() == [
        "rules.yaml:8:14: rules[0].message: unknown filter 'rond' in message "
        "(did you mean 'round'?)"
    ]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('"{{ ' + "(" * 3000 + "1" + ")" * 3000 + ' }}"', "the message is nested too deeply"),
        ('"{{ 1' + "0" * 5000 + ' }}"', "a number in the message has too many digits"),
        ('"' + "x" * 20_001 + '"', "the message is longer than 20,000 characters"),
    ],
)
def test_what_jinja_or_python_would_raise_while_parsing_is_a_problem(
    message: str, expected: str
) -> None:
    assert problem_of(message) == f"rules.yaml:6:14: rules[0].message: {expected}"


def test_templates_that_fail_only_at_render_still_load() -> None:
    # They fall back to the default message when they run (test_templates_render.py).
    for message in ['"{{ symbol|truncate(1) }}"', "\"{{ '%(x)s' % {} }}\"", '"{{ [].pop() }}"']:
        assert load(rule_file(message)).rules[0].template is not None


def test_check_refuses_the_hostile_template_in_one_line_and_bounded_time(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rule_file('"{% for i in [1]*10**7 %}{% endfor %}"'))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "service", "check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert time.monotonic() - started < 30  # 35 s and 7.6 GB before the bound
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[0].startswith("rules.yaml:6:14: rules[0].message: ")
    assert "Traceback" not in result.stderr
