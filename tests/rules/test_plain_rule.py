"""`plain_rule`, the loader's fast path, reads a rule exactly as RuleModel validates it,
and leaves RuleModel everything else (issue #16)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from service.rules.model import RuleFields, RuleModel, plain_rule

PLAIN: list[dict[str, Any]] = [
    {"name": "r1", "symbols": ["AAPL"], "when": "price > 5"},
    {"name": "r.2-x_y", "symbols": "chips", "when": "price > 5", "clear_when": "price < 4"},
    {
        "name": "r3",
        "symbols": ["A", "B"],
        "when": "price > 5",
        "for": "5m",
        "cooldown": "1h",
        "notify": "hook",
        "message": "{{ symbol }}",
        "notify_resolved": True,
        "enabled": False,
        "urgent": True,
        "description": None,
    },
    {"name": "d", "symbols": ["A"], "digest": "0 8 * * mon", "window": "3d", "tz": "UTC"},
    {"name": "n", "symbols": ["A"], "when": "price > 5", "notify": [], "message": None},
]
NOT_PLAIN: list[dict[str, Any]] = [
    {"name": "r", "symbols": ["A"], "when": "price > 5", "enabled": "yes"},  # pydantic: True
    {"name": "r", "symbols": ["A"], "when": "price > 5", "for_": "5m"},  # by field name
    {"name": "r", "symbols": ["A"], "when": "  "},
    {"name": "r", "symbols": [], "when": "price > 5"},
    {"name": "r\n", "symbols": ["A"], "when": "price > 5"},
    {"name": "-r", "symbols": ["A"], "when": "price > 5"},
    {"name": "r", "symbols": ["A", 1], "when": "price > 5"},
    {"name": "r", "symbols": None, "when": "price > 5"},
    {"name": "r", "symbols": ["A"], "when": "price > 5", "for": 300},
    {"name": "r", "symbols": ["A"], "when": "price > 5", "for": "5 parsecs"},
    {"name": "r", "symbols": ["A"], "when": "price > 5", "colour": "red"},
    {"symbols": ["A"], "when": "price > 5"},
]


def test_its_fields_are_rule_models() -> None:
    # A field added to RuleModel must be added to RuleFields (and to plain_rule).
    assert [f.name for f in fields(RuleFields)] == list(RuleModel.model_fields)


@pytest.mark.parametrize("raw", PLAIN)
def test_a_plain_rule_reads_as_rule_model_validates_it(raw: dict[str, Any]) -> None:
    assert plain_rule(raw) == RuleFields.of(RuleModel.model_validate(raw))


@pytest.mark.parametrize("raw", NOT_PLAIN)
def test_anything_else_is_left_to_rule_model(raw: dict[str, Any]) -> None:
    assert plain_rule(raw) is None  # RuleModel reads it (`enabled: "yes"`) or words why not
