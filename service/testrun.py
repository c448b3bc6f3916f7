"""What `earnwatch test` does at the edge: read the test files and the rule files they
name, run each test (`service/ruletests.py`, pure) and return the lines to print.

Rule files are loaded as `check` loads them (the size limit, UTF-8, validation, `${VAR}`
from the environment and `.env`), except that the test file's `env:` wins over both (a
test reads the same on every machine) and channel URLs are not looked up for the SSRF
guard: a test sends nothing and uses no network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from service.config import load_env
from service.errors import RuleFileError
from service.notify import CHANNEL_CONFIGS
from service.rulefile import decode_rule_text, load_rule_file, read_rule_bytes
from service.rules import RuleSet
from service.rules.testfile import RuleTestFile, load_tests
from service.ruletests import report_lines, run_test, unknown_rules

#: (text, whether it goes to stderr)
Line = tuple[str, bool]


def run_rule_tests(
    paths: Sequence[Path],
    *,
    max_bytes: int,
    env_file: str | Path | None = ".env",
) -> tuple[int, list[Line]]:
    """(exit code, lines): 0 when every test passes, 1 when one fails, 2 when a test file
    or a rule file it names is invalid or unreadable (its problems as PATH:LINE:COL:
    message; the other files still run)."""
    code = 0
    out: list[Line] = []
    passed = failed = 0
    for path in paths:
        loaded = _load(path, max_bytes, load_env(env_file), out)
        if loaded is None:
            code = 2
            continue
        tests, rulesets = loaded
        for test in tests.tests:
            outcome = run_test(test, rulesets)
            out += [(text, False) for text in report_lines(outcome)]
            passed += outcome.passed
            failed += not outcome.passed
    if failed:
        code = max(code, 1)
    if passed or failed:
        out.append((f"{passed + failed} test(s): {passed} passed, {failed} failed", False))
    return code, out


def _load(
    path: Path, max_bytes: int, env: Mapping[str, str], out: list[Line]
) -> tuple[RuleTestFile, list[RuleSet]] | None:
    """The test file and its rule sets, or None with the problems added to `out`."""
    try:
        data, _ = read_rule_bytes(path, max_bytes=max_bytes)
        tests = load_tests(decode_rule_text(path, data), source=str(path))
    except OSError as exc:
        out.append((f"{path}: cannot read the test file: {exc.strerror}", True))
        return None
    except RuleFileError as exc:
        out += [(line, True) for line in exc.lines()]
        return None
    env = {**env, **tests.env}
    rulesets: list[RuleSet] = []
    for name, line, col in tests.rule_files:
        target = path.parent / name
        try:
            ruleset = load_rule_file(
                target, env=env, channel_configs=CHANNEL_CONFIGS, max_bytes=max_bytes
            )
        except OSError as exc:
            out.append(
                (f"{path}:{line}:{col}: rule_files: cannot read {target}: {exc.strerror}", True)
            )
            continue
        except RuleFileError as exc:
            out += [(text, True) for text in exc.lines()]
            continue
        rulesets.append(ruleset)
    if len(rulesets) < len(tests.rule_files):
        return None
    problems = unknown_rules(tests, rulesets)
    if problems:
        out += [(p.format(str(path)), True) for p in sorted(problems)]
        return None
    return tests, rulesets
