"""Whatever the text, `load_rules` returns a RuleSet or raises RuleFileError whose lines
all name the file: never another exception, never a traceback for the user."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import RuleFileError
from tests.rules.conftest import load

GOOD = (
    "version: 1\nchannels:\n  h: &h\n    type: webhook\n    url: https://h.example/x\n"
    "groups:\n  g: [LUMN, ON]\ndefaults:\n  notify: [h]\n  cooldown: 4h\n"
    "rules:\n  - &r\n    name: r\n    symbols: g\n    when: price > 1\n    for: 10m\n"
    "    message: '{{ symbol }} {{ price }}'\n  - <<: *r\n    name: s\n"
)
PIECES = [
    "*r",
    "&a ",
    "*a",
    "<<: ",
    "!!python/name:os.system ",
    "!!binary ",
    "!x ",
    "~",
    "ON",
    "99999999999999999999d",
    "2026-13-45",
    "${FINNHUB_API_KEY}",
    "${X",
    "\u0131",
    "\uff50",
    "\t",
    "\x00",
    "\n",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "'",
    '"',
    "#",
    "|",
    ">",
    "1e400",
]


def outcome(text: str) -> None:
    try:
        load(text)
    except RuleFileError as exc:
        assert all(line.startswith("rules.yaml:") for line in exc.lines())
        assert all("\n" not in line for line in exc.lines())
        # The last-resort net of load_rules: reaching it would be a bug to fix. (The nets
        # around the template and condition compilers, "cannot be compiled", are theirs.)
        assert not any("could not be validated" in line for line in exc.lines()), exc.lines()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(GOOD)), st.sampled_from(PIECES)), max_size=6))
def test_edits_of_a_good_file_are_a_ruleset_or_a_rule_file_error(
    edits: list[tuple[int, str]],
) -> None:
    text = GOOD
    for at, piece in edits:
        text = text[:at] + piece + text[at:]
    outcome(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_a_ruleset_or_a_rule_file_error(text: str) -> None:
    outcome(text)
