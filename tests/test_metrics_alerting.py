"""The metrics of issue #10: rule errors, dropped duplicates, recording, heartbeats."""

from __future__ import annotations

import pytest

from service.metrics import OTHER_RULES, Metrics
from tests.test_metrics import key, samples


def test_rule_errors_duplicates_recording_and_heartbeats_are_exposed() -> None:
    metrics = Metrics()
    metrics.rule_error("poison", "condition")
    metrics.rule_error("poison", "condition")
    metrics.rule_error("loud", "render")
    metrics.alert_deduplicated("miss")
    metrics.recording_failed()
    metrics.set_unrecorded(3)
    metrics.heartbeat("sent")
    metrics.heartbeat("skipped")
    got = samples(metrics)
    assert got[key("earnwatch_rule_errors_total", rule="poison", kind="condition")] == 2
    assert got[key("earnwatch_rule_errors_total", rule="loud", kind="render")] == 1
    assert got[key("earnwatch_alerts_deduplicated_total", rule="miss")] == 1
    assert got[key("earnwatch_recording_failures_total")] == 1
    assert got[key("earnwatch_alerts_unrecorded")] == 3
    assert got[key("earnwatch_heartbeats_total", outcome="sent")] == 1
    assert got[key("earnwatch_heartbeats_total", outcome="skipped")] == 1


def test_rule_error_labels_share_the_rule_cap_and_kinds_are_closed() -> None:
    metrics = Metrics(max_rule_labels=1)
    metrics.alert_fired("first")
    metrics.rule_error("second", "condition")
    assert samples(metrics)[key("earnwatch_rule_errors_total", rule=OTHER_RULES, kind="condition")]
    with pytest.raises(ValueError, match="unknown rule error kind"):
        metrics.rule_error("first", "crash")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown heartbeat outcome"):
        metrics.heartbeat("late")  # type: ignore[arg-type]
