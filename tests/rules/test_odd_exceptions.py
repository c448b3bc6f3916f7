"""An exception that is not a ValidationError, from a channel's model, the caller's
channel check or the loader itself, is a problem with a place, never a traceback."""

import pytest
from pydantic import BaseModel, field_validator

from service.errors import RuleFileError
from service.rules import load_rules
from service.rules.loader import Loader
from tests.rules.conftest import CHANNEL_CONFIGS

TEXT = "channels:\n  h:\n    type: odd\n    n: 10\nrules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"


class _Odd(BaseModel):
    n: int

    @field_validator("n")
    @classmethod
    def _huge(cls, value: int) -> int:
        return int(float("inf") * value)  # OverflowError, which pydantic does not wrap


class _Hookish(BaseModel):
    n: int


def refused(**kwargs: object) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        load_rules(TEXT, source="r.yaml", env={}, **kwargs)  # type: ignore[arg-type]
    return info.value.lines()


def test_an_overflow_in_a_channel_model_is_a_problem_at_the_channel() -> None:
    assert refused(channel_configs={**CHANNEL_CONFIGS, "odd": _Odd}) == [
        "r.yaml:3:5: channels.h: invalid value (OverflowError)"
    ]


def test_a_failing_channel_check_is_a_problem_at_the_channel() -> None:
    def check(kind: str, config: BaseModel) -> list[tuple[str, str]]:
        raise OSError("resolver down")

    configs = {**CHANNEL_CONFIGS, "odd": _Hookish}
    assert refused(channel_configs=configs, channel_check=check) == [
        "r.yaml:3:5: channels.h: cannot be checked (OSError)"
    ]


def test_a_bug_in_the_loader_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Loader) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(Loader, "load", broken)
    assert refused(channel_configs=CHANNEL_CONFIGS) == [
        "r.yaml: the rule file could not be validated (KeyError)"
    ]
