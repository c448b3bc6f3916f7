"""Prometheus metrics of one Earnwatch process, behind named methods.

`Metrics` owns its own `CollectorRegistry` (never the global one), so tests and several
daemons in one process do not collide. Callers say what happened (`metrics.poll("quotes")`,
`metrics.delivery("slack", "retry")`) and never touch a prometheus object. Label values
are closed sets (`PollKind`, `ProviderErrorKind`, `DeliveryOutcome`, `JobEvent`,
`RuleErrorKind`, `HeartbeatOutcome`), except
provider, channel kind, job and rule names; rule names are capped (`max_rule_labels`) so a
rule file of a hundred thousand rules cannot blow up the scrape.

No secret is ever a label value: providers and channels are named by kind, never by URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

PollKind = Literal["quotes", "calendar", "earnings", "targets", "confirm"]
ProviderErrorKind = Literal["auth", "rate_limited", "unavailable", "data", "unsupported"]
DeliveryOutcome = Literal["delivered", "retry", "dead"]
JobEvent = Literal["error", "missed", "max_instances"]
RuleErrorKind = Literal["condition", "render"]
HeartbeatOutcome = Literal["sent", "failed", "skipped"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
OTHER_RULES: Final = "_other"
"""The `rule` label of alerts from rules beyond `max_rule_labels` distinct names."""

_PRICE_AGE_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 900.0)
_EVALUATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _check(value: str, allowed: object, what: str) -> None:
    if value not in get_args(allowed):
        raise ValueError(f"unknown {what} {value!r}: expected one of {get_args(allowed)}")


class Metrics:
    """Every Earnwatch metric, in a registry of its own; `render()` gives the scrape body."""

    def __init__(self, *, max_rule_labels: int = 1000) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._max_rule_labels = max_rule_labels
        self._rules_seen: set[str] = set()
        r = self.registry
        self._polls = Counter(
            "earnwatch_polls", "Provider polls started, by kind of data.", ["kind"], registry=r
        )
        self._provider_errors = Counter(
            "earnwatch_provider_errors",
            "Failed provider calls, by provider and kind of failure.",
            ["provider", "kind"],
            registry=r,
        )
        self._alerts = Counter(
            "earnwatch_alerts_fired", "Alerts written to the outbox, by rule.", ["rule"], registry=r
        )
        self._resolved = Counter(
            "earnwatch_alerts_resolved",
            "Resolved messages (notify_resolved) written to the outbox, by rule.",
            ["rule"],
            registry=r,
        )
        self._amended = Counter(
            "earnwatch_alerts_amended",
            "Amended messages (notify_amended) written to the outbox, by rule.",
            ["rule"],
            registry=r,
        )
        self._deliveries = Counter(
            "earnwatch_deliveries",
            "Delivery attempts, by channel kind and outcome.",
            ["channel_kind", "outcome"],
            registry=r,
        )
        self._evaluation = Histogram(
            "earnwatch_evaluation_seconds",
            "Time to evaluate every rule against one cycle's snapshots.",
            buckets=_EVALUATION_BUCKETS,
            registry=r,
        )
        self._rules_loaded = Gauge(
            "earnwatch_rules_loaded", "Rules in the rule set in force.", registry=r
        )
        self._reload_errors = Counter(
            "earnwatch_rule_reload_errors",
            "Rule file reloads refused (the previous rule set stays in force).",
            registry=r,
        )
        self._outbox_pending = Gauge(
            "earnwatch_outbox_pending", "Deliveries waiting in the outbox.", registry=r
        )
        self._last_success = Gauge(
            "earnwatch_last_provider_success_timestamp",
            "Unix time of the last successful provider call (0: none yet).",
            registry=r,
        )
        self._leader = Gauge(
            "earnwatch_leader", "1 while this replica holds leadership, else 0.", registry=r
        )
        self._job_events = Counter(
            "earnwatch_job_events",
            "Scheduler job runs that errored, were missed or were skipped (max instances).",
            ["job", "event"],
            registry=r,
        )
        self._rule_errors = Counter(
            "earnwatch_rule_errors",
            "Rule evaluations that failed for one symbol, by rule and kind (condition: the "
            "condition raised and counted as unknown; render: the default message was sent).",
            ["rule", "kind"],
            registry=r,
        )
        self._deduplicated = Counter(
            "earnwatch_alerts_deduplicated",
            "Alerts not recorded because their dedup key was already stored (not sent again).",
            ["rule"],
            registry=r,
        )
        self._silenced = Counter(
            "earnwatch_alerts_silenced",
            "Alerts a silence stopped (recorded as silenced, never sent), by rule.",
            ["rule"],
            registry=r,
        )
        self._held = Counter(
            "earnwatch_deliveries_held",
            "Deliveries a stage muted (recorded, never sent) or deferred (sent later), by action.",
            ["action"],
            registry=r,
        )
        self._recording_failures = Counter(
            "earnwatch_recording_failures",
            "Evaluation passes whose alerts and states could not be written (kept, retried).",
            registry=r,
        )
        self._unrecorded = Gauge(
            "earnwatch_alerts_unrecorded",
            "Alerts held in memory because the database could not be written.",
            registry=r,
        )
        self._heartbeats = Counter(
            "earnwatch_heartbeats",
            "Heartbeat pings, by outcome (sent, failed, or skipped while unhealthy).",
            ["outcome"],
            registry=r,
        )
        self._stream_connected = Gauge(
            "earnwatch_stream_connected",
            "1 while the trade stream is connected and subscribed, else 0.",
            registry=r,
        )
        self._stream_trades = Counter(
            "earnwatch_stream_trades", "Trades taken from the trade stream.", registry=r
        )
        self._price_age = Histogram(
            "earnwatch_price_age_seconds",
            "Age of each changed price (now minus its trade time) when it is evaluated.",
            buckets=_PRICE_AGE_BUCKETS,
            registry=r,
        )
        for kind in get_args(PollKind):
            self._polls.labels(kind=kind)

    # --- counters -------------------------------------------------------------------
    def poll(self, kind: PollKind) -> None:
        """One provider poll of `kind` started."""
        _check(kind, PollKind, "poll kind")
        self._polls.labels(kind=kind).inc()

    def provider_error(self, provider: str, kind: ProviderErrorKind) -> None:
        """A call to `provider` failed with a failure of `kind`."""
        _check(kind, ProviderErrorKind, "provider error kind")
        self._provider_errors.labels(provider=provider, kind=kind).inc()

    def _rule_label(self, rule: str) -> str:
        if rule not in self._rules_seen and len(self._rules_seen) >= self._max_rule_labels:
            return OTHER_RULES
        self._rules_seen.add(rule)
        return rule

    def alert_fired(self, rule: str) -> None:
        """Rule `rule` fired one alert."""
        self._alerts.labels(rule=self._rule_label(rule)).inc()

    def alert_resolved(self, rule: str) -> None:
        """Rule `rule` re-armed after firing and wrote its resolved message."""
        self._resolved.labels(rule=self._rule_label(rule)).inc()

    def alert_amended(self, rule: str) -> None:
        """Rule `rule` wrote the amended message of a corrected report it fired on."""
        self._amended.labels(rule=self._rule_label(rule)).inc()

    def rule_error(self, rule: str, kind: RuleErrorKind) -> None:
        """Rule `rule` failed for one symbol: its condition raised, or its message."""
        _check(kind, RuleErrorKind, "rule error kind")
        self._rule_errors.labels(rule=self._rule_label(rule), kind=kind).inc()

    def alert_deduplicated(self, rule: str) -> None:
        """An alert of `rule` was dropped at insert: its dedup key was already stored."""
        self._deduplicated.labels(rule=self._rule_label(rule)).inc()

    def alert_silenced(self, rule: str) -> None:
        """A silence stopped an alert of `rule` (counted once, whatever its channels)."""
        self._silenced.labels(rule=self._rule_label(rule)).inc()

    def delivery_held(self, action: str) -> None:
        """A stage muted or deferred one channel of an alert (`action`: mute or defer)."""
        self._held.labels(action=action).inc()

    def recording_failed(self) -> None:
        """One pass's alerts and states could not be written to the database."""
        self._recording_failures.inc()

    def set_unrecorded(self, count: int) -> None:
        """`count` alerts wait in memory for the database to take them."""
        self._unrecorded.set(count)

    def heartbeat(self, outcome: HeartbeatOutcome) -> None:
        """One heartbeat was due: sent, failed, or skipped because the daemon is unhealthy."""
        _check(outcome, HeartbeatOutcome, "heartbeat outcome")
        self._heartbeats.labels(outcome=outcome).inc()

    def delivery(self, channel_kind: str, outcome: DeliveryOutcome) -> None:
        """One delivery attempt on a channel of `channel_kind` ended with `outcome`."""
        _check(outcome, DeliveryOutcome, "delivery outcome")
        self._deliveries.labels(channel_kind=channel_kind, outcome=outcome).inc()

    def rule_reload_error(self) -> None:
        """A changed rule file was refused."""
        self._reload_errors.inc()

    def job_event(self, job: str, event: JobEvent) -> None:
        """A scheduler job errored, missed its run time, or was skipped while still running."""
        _check(event, JobEvent, "job event")
        self._job_events.labels(job=job, event=event).inc()

    # --- observations and levels ----------------------------------------------------------
    def observe_evaluation(self, seconds: float) -> None:
        """One evaluation of the rule set took `seconds`."""
        self._evaluation.observe(seconds)

    def set_stream_connected(self, connected: bool) -> None:
        """The trade stream connected (True) or went down (False)."""
        self._stream_connected.set(1 if connected else 0)

    def stream_trade(self) -> None:
        """One trade was taken from the stream (a late, older one is not counted)."""
        self._stream_trades.inc()

    def observe_price_age(self, seconds: float) -> None:
        """A price `seconds` old was evaluated."""
        self._price_age.observe(max(0.0, seconds))

    def set_rules_loaded(self, count: int) -> None:
        """The rule set in force has `count` rules."""
        self._rules_loaded.set(count)

    def set_outbox_pending(self, count: int) -> None:
        """`count` deliveries are waiting in the outbox."""
        self._outbox_pending.set(count)

    def provider_success(self, now: datetime) -> None:
        """A provider call succeeded at `now` (timezone-aware)."""
        if now.tzinfo is None:
            raise ValueError("a timezone-aware datetime is needed")
        self._last_success.set(now.timestamp())

    def set_leader(self, leading: bool) -> None:
        """This replica gained (True) or lost (False) leadership."""
        self._leader.set(1 if leading else 0)

    # --- output ---------------------------------------------------------------------
    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
