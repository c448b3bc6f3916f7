"""Message templates at render time: a template that fails or breaks a bound sends the
default message with a note, never an exception; every message is at most MESSAGE_CAP."""

import time
import tracemalloc
from datetime import UTC, datetime

import pytest

from service.rules import CompiledRule
from service.rules.templates import MESSAGE_CAP, TRUNCATED, MessageTemplate, make_environment
from tests.rules.conftest import load

NOW = datetime(2026, 2, 3, 21, 5, tzinfo=UTC)
VALUES = {"price": 7.61, "prev_close": 8.46}
DEFAULT = "LUMN: r (price > 1): price 7.61"


def rule(message: str) -> CompiledRule:
    text = (
        "version: 1\nrules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"
        f"    message: {message}\n"
    )
    return load(text).rules[0]


def render(message: str) -> tuple[str, str | None]:
    compiled = rule(message)
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = compiled.render_checked(VALUES, "LUMN", NOW)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 20  # generous: minutes of CPU before the bound
    assert peak < 50_000_000, peak
    assert len(result[0]) <= MESSAGE_CAP
    return result


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('"{{ symbol|truncate(1) }}"', "AssertionError"),
        ('"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"', "RecursionError"),
        ("\"{{ '%(x)s' % {} }}\"", "KeyError"),
        ('"{{ [].pop() }}"', "SecurityError"),
        ("\"{{ symbol.encode('x') }}\"", "LookupError"),
        ('"{{ price / 0 }}"', "ZeroDivisionError"),
        ('"{{ eps_actual|int + 1 }} {{ now.nope.deeper }}"', "UndefinedError"),
    ],
)
def test_a_template_that_raises_sends_the_default_message_with_a_note(
    message: str, kind: str
) -> None:
    assert render(message) == (f"{DEFAULT} (message template failed: {kind})", kind)


@pytest.mark.parametrize(
    "message",
    [
        # Sizes that depend on the values, so only the render can refuse them:
        '"{{ symbol|center(price|int * 10**8) }}"',
        "\"{{ (symbol * 2000)|replace('', 'yyyyyyyyyy') }}\"",
        "\"{{ symbol.translate({76: 'x' * 10000}) }}\"",
        "\"{{ symbol|map('center', 10**5)|join }}\"",
        "\"{{ ('y' * 100).join(symbol|map('center', 19000)) }}\"",
        "\"{{ ('%0999999999d'.encode()) % (price|int) }}\"",
        '"{% macro f(n) %}{{ f(n-1) ~ f(n-1) if n else symbol }}{% endmacro %}{{ f(40) }}"',
        # Work: nested loops, a recursive loop, output into a block.
        "\"{% set s = 'x' * 10000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}\"",
        "\"{% set s = 'x' * 10000 %}{% set t %}{% for a in s %}{% for b in s %}{{ b }}"
        '{% endfor %}{% endfor %}{% endset %}{{ t|length }}"',
        "\"{% for x in ['a'] * 100 recursive %}{{ loop(['b'] * 100) }}{% endfor %}\"",
        "\"{{ now.strftime('%c' * 5000) }}\"",
    ],
)
def test_a_template_that_breaks_a_bound_at_render_sends_the_default_message(
    message: str,
) -> None:
    text, kind = render(message)
    assert kind in ("TemplateLimitError", "RecursionError")
    assert text == f"{DEFAULT} (message template failed: {kind})"


def test_a_long_message_is_cut_at_the_cap_with_a_marker() -> None:
    text, kind = render("\"{{ symbol }} {% for i in 'x' * 3000 %}{{ price }} {% endfor %}\"")
    assert kind is None
    assert len(text) <= MESSAGE_CAP and text.endswith(TRUNCATED)
    assert text.startswith("LUMN 7.61 7.61 ")


def test_output_cut_while_streaming_keeps_the_marker() -> None:
    text, _kind = render("\"{{ symbol }}{{ ' ' * 10000 }}{{ price }}\"")
    assert text == "LUMN" + TRUNCATED


def test_a_good_template_renders_as_before() -> None:
    message = '"{{ symbol }} {{ price|round(1) }} {{ change_pct|pct }} {{ eps_actual }}"'
    assert render(message) == ("LUMN 7.6 n/a n/a", None)


def test_render_still_returns_text_only() -> None:
    assert rule('"{{ symbol|truncate(1) }}"').render(VALUES, "LUMN", NOW) == (
        f"{DEFAULT} (message template failed: AssertionError)"
    )


def test_the_template_alone_raises_so_callers_can_tell() -> None:
    template = MessageTemplate(make_environment(), "{{ symbol|truncate(1) }}")
    with pytest.raises(AssertionError):
        template.render(VALUES, rule="r", symbol="LUMN", now=NOW)


def test_templates_of_one_file_share_an_environment() -> None:
    env = make_environment()
    first = MessageTemplate(env, "{{ symbol|truncate(1) }}")
    second = MessageTemplate(env, "{{ symbol }}{% for i in 'x' * 3 %} {{ price }}{% endfor %}")
    again = MessageTemplate(env, "{{ symbol|truncate(1) }}")
    assert second.render(VALUES, rule="r", symbol="LUMN", now=NOW) == "LUMN 7.61 7.61 7.61"
    assert again._template is first._template  # compiled once per file


def test_a_template_prints_figures_as_every_channel_shows_them() -> None:
    values = {"price": 7.61, "revenue_actual": 1_234_000_000.0, "reported": True}
    template = MessageTemplate(
        make_environment(),
        "{{ price }} {{ revenue_actual }} {{ reported }} {{ eps_actual }} {{ now }}"
        " {{ revenue_actual|money }} {{ eps_actual|pct }}",
    )
    assert template.render(values, rule="r", symbol="LUMN", now=NOW) == (
        "7.61 1.234B true n/a 2026-02-03T21:05:00+00:00 $1.234B n/a"
    )
