"""Metrics: named methods in, Prometheus text out, one registry per instance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import CONTENT_TYPE, OTHER_RULES, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_every_metric_is_exposed_under_its_documented_name() -> None:
    metrics = Metrics()
    metrics.poll("quotes")
    metrics.provider_error("finnhub", "rate_limited")
    metrics.alert_fired("lumn-drop")
    metrics.delivery("slack", "delivered")
    metrics.observe_evaluation(0.003)
    metrics.set_rules_loaded(12)
    metrics.rule_reload_error()
    metrics.set_outbox_pending(4)
    metrics.provider_success(datetime(2026, 2, 3, 21, 5, tzinfo=UTC))
    metrics.set_leader(True)
    metrics.job_event("poll_quotes", "max_instances")
    got = samples(metrics)
    assert got[("earnwatch_polls_total", (("kind", "quotes"),))] == 1
    assert got[("earnwatch_polls_total", (("kind", "calendar"),))] == 0
    assert got[key("earnwatch_provider_errors_total", kind="rate_limited", provider="finnhub")] == 1
    assert got[("earnwatch_alerts_fired_total", (("rule", "lumn-drop"),))] == 1
    assert got[key("earnwatch_deliveries_total", channel_kind="slack", outcome="delivered")] == 1
    assert got[("earnwatch_evaluation_seconds_count", ())] == 1
    assert got[("earnwatch_rules_loaded", ())] == 12
    assert got[("earnwatch_rule_reload_errors_total", ())] == 1
    assert got[("earnwatch_outbox_pending", ())] == 4
    assert got[("earnwatch_last_provider_success_timestamp", ())] == 1770152700.0
    assert got[("earnwatch_leader", ())] == 1
    assert got[key("earnwatch_job_events_total", event="max_instances", job="poll_quotes")] == 1


def test_two_instances_do_not_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.poll("earnings")
    assert samples(first)[("earnwatch_polls_total", (("kind", "earnings"),))] == 1
    assert samples(second)[("earnwatch_polls_total", (("kind", "earnings"),))] == 0


def test_losing_leadership_sets_the_gauge_to_zero() -> None:
    metrics = Metrics()
    metrics.set_leader(True)
    metrics.set_leader(False)
    assert samples(metrics)[("earnwatch_leader", ())] == 0


def test_unknown_label_values_of_closed_sets_are_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="poll kind"):
        metrics.poll("prices")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delivery outcome"):
        metrics.delivery("slack", "lost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="provider error kind"):
        metrics.provider_error("fmp", "teapot")  # type: ignore[arg-type]


def test_rule_labels_beyond_the_cap_are_counted_together() -> None:
    metrics = Metrics(max_rule_labels=2)
    for rule in ("a", "b", "c", "d", "a"):
        metrics.alert_fired(rule)
    got = samples(metrics)
    assert got[("earnwatch_alerts_fired_total", (("rule", "a"),))] == 2
    assert got[("earnwatch_alerts_fired_total", (("rule", OTHER_RULES),))] == 2
    assert ("earnwatch_alerts_fired_total", (("rule", "c"),)) not in got


def test_naive_success_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Metrics().provider_success(datetime(2026, 2, 3, 21, 5))


def test_content_type_is_the_prometheus_text_format() -> None:
    assert CONTENT_TYPE.startswith("text/plain; version=")


def test_the_stream_metrics() -> None:
    metrics = Metrics()
    metrics.set_stream_connected(True)
    metrics.stream_trade()
    metrics.stream_trade()
    metrics.observe_price_age(0.2)
    metrics.observe_price_age(-1.0)  # a trade stamped a little ahead of our clock
    text = metrics.render().decode()
    assert "earnwatch_stream_connected 1.0" in text
    assert "earnwatch_stream_trades_total 2.0" in text
    assert "earnwatch_price_age_seconds_count 2.0" in text
    assert 'earnwatch_price_age_seconds_bucket{le="0.05"} 1.0' in text
