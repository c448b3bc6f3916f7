"""What `earnwatch explain RULE` says about a rule for each of its symbols: its values and
how old they are, each comparison's truth, the rule's state and a one-line verdict.

Pure: the caller (`commands.show_explain`) reads the stored states, market data, active
silences and deferred deliveries and hands them in with `now`. The verdict follows the
engine's `step()` in its order (armed? the condition? the same report? `for`? cooldown?),
so it says what the next evaluation would do with the data last known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from service.digest import digest_alert, format_window, in_window
from service.engine import FIGURES, RuleState, amend, event_key
from service.figures import format_value
from service.market import PRICE_VARS, TARGET_VARS, Value, variables
from service.marketdata import MarketData
from service.rules import CompiledRule, DigestRule
from service.rules.trace import Step, Trace, trace


class SilenceLike(Protocol):
    """A silence as the store keeps it (`Store.silences(now)`, a frozen dataclass): a
    `rule` or `symbol` of None matches any."""

    @property
    def id(self) -> str: ...
    @property
    def rule(self) -> str | None: ...
    @property
    def symbol(self) -> str | None: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Held:
    """A delivery of the rule for the symbol, deferred by a stage until `until`."""

    channel: str
    until: datetime
    reason: str | None


@dataclass(frozen=True, slots=True)
class Reading:
    """One variable's value and, where the market data keeps its time, its age."""

    value: Value
    age: timedelta | None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything `explain` says about one rule for one symbol."""

    symbol: str
    values: Mapping[str, Reading]
    when: Trace
    clear: Trace | None
    state: RuleState  # what the engine would go on from (a fresh one if none applies)
    stored: bool  # a state was stored for this definition of the rule
    now: datetime
    hold: timedelta | None
    cooldown: timedelta | None
    silences: tuple[SilenceLike, ...] = ()
    deferred: tuple[Held, ...] = ()
    verdict: str = ""
    notes: tuple[str, ...] = field(default=())
    #: A `notify_amended` rule's figures as last sent, (variable, figure): `eps_actual`,
    #: `revenue_actual`; empty for other rules.
    sent: tuple[tuple[str, float | None], ...] = ()
    #: The amended message the next evaluation sends: the report's figures changed since.
    correction: str | None = None

    @property
    def pending_left(self) -> timedelta | None:
        if self.hold is None or self.state.pending_since is None:
            return None
        return max(self.state.pending_since + self.hold - self.now, timedelta(0))

    @property
    def cooldown_until(self) -> datetime | None:
        if self.cooldown is None or self.state.last_fired is None:
            return None
        until = self.state.last_fired + self.cooldown
        return until if until > self.now else None


def silences_for(
    silences: Sequence[SilenceLike], rule: str, symbol: str, now: datetime
) -> tuple[SilenceLike, ...]:
    """The silences that would mute an alert of `rule` for `symbol` at `now`."""
    return tuple(
        s
        for s in silences
        if (s.rule is None or s.rule == rule)
        and (s.symbol is None or s.symbol.upper() == symbol)
        and s.starts_at <= now < s.ends_at
    )


def explain(
    rule: CompiledRule,
    symbol: str,
    data: MarketData,
    state: RuleState | None,
    now: datetime,
    *,
    silences: Sequence[SilenceLike] = (),
    deferred: Sequence[Held] = (),
) -> Explanation:
    """Explain `rule` for `symbol` from the last known `data` and the stored `state`."""
    snapshot = data.snapshot(symbol)
    values = variables(snapshot, now)
    names = sorted(rule.when.names | (rule.clear_when.names if rule.clear_when else set()))
    quote_time = snapshot.quote.time if snapshot.quote else None
    target_time = snapshot.targets.updated if snapshot.targets else None
    readings = {}
    for name in names:
        value = values.get(name)
        kept = quote_time if name in PRICE_VARS else target_time if name in TARGET_VARS else None
        age = max(now - kept, timedelta(0)) if kept is not None and value is not None else None
        readings[name] = Reading(value, age)
    when = trace(rule.when, values)
    clear = trace(rule.clear_when, values) if rule.clear_when is not None else None
    stored = state is not None and state.fingerprint == rule.fingerprint
    notes: list[str] = []
    if state is not None and not stored:
        notes.append("the stored state is of an earlier version of the rule: it starts afresh")
    current = state if stored and state is not None else RuleState(fingerprint=rule.fingerprint)
    report = event_key(rule, values)
    if not current.armed and report is not None and report != current.last_report:
        notes.append(f"report {report} is new: it re-arms the rule")
        current = RuleState(
            fingerprint=current.fingerprint,
            last_fired=current.last_fired,
            last_report=current.last_report,
            fired=current.fired,
        )
    sent: tuple[tuple[str, float | None], ...] = ()
    correction = None
    if rule.notify_amended:
        figures = (current.eps_notified, current.revenue_notified)
        sent = tuple((name, figure) for (name, _), figure in zip(FIGURES, figures, strict=True))
        # what the engine's pass would do with these values: the one test of a correction
        _, amended = amend(rule, symbol, current, False, values, now)
        correction = amended.text if amended is not None else None
    out = Explanation(
        symbol=symbol,
        values=readings,
        when=when,
        clear=clear,
        state=current,
        stored=stored,
        now=now,
        hold=rule.hold,
        cooldown=rule.cooldown,
        silences=silences_for(silences, rule.name, symbol, now),
        deferred=tuple(deferred),
        notes=tuple(notes),
        sent=sent,
        correction=correction,
    )
    return _with_verdict(out, rule, report)


@dataclass(frozen=True, slots=True)
class DigestExplanation:
    """What `explain` says about a digest rule: its next firing, the message it would send
    then on the data known now (the reports in its window), and when it last sent."""

    rule: DigestRule
    now: datetime
    next_firing: datetime | None
    message: str | None  # None: no report in the window, nothing to send
    reports: int
    last_sent: datetime | None
    silences: tuple[SilenceLike, ...]  # those that would mute the next firing
    verdict: str


def explain_digest(
    rule: DigestRule,
    data: MarketData,
    now: datetime,
    *,
    silences: Sequence[SilenceLike] = (),
    last_sent: datetime | None = None,
) -> DigestExplanation:
    """Explain digest `rule` from the last known `data`: its next firing's message is the
    daemon's own (`digest_alert`), made now from the calendar as it stands."""
    firing = rule.cron.get_next_fire_time(None, now)
    reports = len(in_window(rule, data, firing)) if firing is not None else 0
    alert = digest_alert(rule, firing, data) if firing is not None and reports else None
    # the silences the daemon's stage would find over the firing's alert (its symbol is
    # the symbols it lists)
    muting = silences_for(silences, rule.name, alert.symbol, firing) if alert is not None else ()
    if firing is None:
        verdict = "never fires again"
    elif alert is None:
        verdict = (
            f"sends nothing at {local(firing, rule)}: no report of its symbols falls in the"
            f" {format_window(rule.window)} from then (as the calendar stands)"
        )
    else:
        verdict = f"sends {reports} report{'s' if reports != 1 else ''} at {local(firing, rule)}"
        if muting:
            verdict += f", but it is silenced by {muting[0].id} until {moment(muting[0].ends_at)}"
    return DigestExplanation(
        rule=rule,
        now=now,
        next_firing=firing,
        message=alert.text if alert is not None else None,
        reports=reports,
        last_sent=last_sent,
        silences=muting,
        verdict=verdict,
    )


def local(when: datetime, rule: DigestRule) -> str:
    """A digest's firing as its message writes it, and in UTC: `2026-02-09 08:00 EST
    (13:00Z)`."""
    return f"{when.astimezone(rule.tz):%Y-%m-%d %H:%M %Z} ({when.astimezone(UTC):%H:%MZ})"


def _with_verdict(e: Explanation, rule: CompiledRule, report: str | None) -> Explanation:
    verdict = _verdict(e, rule, report)
    if verdict == "would fire now" and e.silences:
        s = e.silences[0]
        verdict += f", but its alert is silenced by {s.id} until {moment(s.ends_at)}"
    return replace(e, verdict=verdict)


def _verdict(e: Explanation, rule: CompiledRule, report: str | None) -> str:
    state, when, clear = e.state, e.when, e.clear
    if not state.armed:
        fired = f"fired at {moment(state.last_fired)}" if state.last_fired else "not armed"
        then = ", or with the next report" if rule.uses_earnings else ""
        if clear is not None:
            if clear.value is True:
                return f"{fired}, re-arms at the next evaluation ({clear.source} is true)"
            return f"{fired}, re-arms when {clear.source}{then}"
        if when.value is False:
            return f"{fired}, re-arms at the next evaluation (the condition is false)"
        return f"{fired}, re-arms when the condition turns false{then}"
    if when.value is None:
        if when.error is not None:
            return f"cannot fire: the condition failed on these values ({when.error})"
        unknown = when.unknown
        verb = "is" if len(unknown) == 1 else "are"
        return f"cannot fire: {_and(unknown)} {verb} unknown"
    if when.value is not True:
        return f"false: {_why_false(when)}"
    if report is not None and report == state.last_report:
        return f"true, but it already fired for report {report}"
    if e.hold is not None:
        if state.pending_since is None:
            return f"true: fires once it has held for {span(e.hold)}"
        left = e.pending_left
        if left is not None and left > timedelta(0):
            return f"pending for {span(left)} more"
    if e.cooldown_until is not None:
        return f"in cooldown until {moment(e.cooldown_until)}"
    return "would fire now"


def _why_false(t: Trace) -> str:
    steps = [t.steps[i] for i in t.deciding]
    if not steps:
        return f"{t.source} is false"
    return "; ".join(_step_false(s) for s in steps[:2])


def _step_false(s: Step) -> str:
    if s.op is None or s.value is True:  # a flag, or a part that holds under a `not`
        return f"{s.text} is {format_value(s.value)}"
    left, right = (_side(text, v) for text, v in zip(s.sides, (s.left, s.right), strict=True))
    return f"{left} is not {s.op} {right}"


def _side(text: str, value: object) -> str:
    if isinstance(value, tuple):
        return text
    shown = format_value(value)  # type: ignore[arg-type]
    literal = text.replace('"', "").replace("'", "")
    if literal == shown or _same_number(text, value):
        return shown
    return f"{text} {shown}"


def _same_number(text: str, value: object) -> bool:
    try:
        return float(text) == value
    except ValueError:
        return False


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def moment(when: datetime | None) -> str:
    """A time as `explain` and `history` show it: `2026-02-04 16:34Z`."""
    if when is None:
        return "-"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def span(length: timedelta) -> str:
    """A duration the way a rule file writes it, rounded: `45s`, `3m`, `2h 5m`, `3d 4h`."""
    seconds = int(length.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 3600:
        return f"{minutes}m"
    if seconds < 86400:
        return f"{hours}h {minutes % 60}m" if minutes % 60 else f"{hours}h"
    return f"{days}d {hours % 24}h" if hours % 24 else f"{days}d"


def state_text(e: Explanation) -> list[str]:
    """The state, one fact a line: armed or when it fired, a running `for`, cooldown,
    silences and deferred deliveries."""
    s = e.state
    lines = ["armed" if s.armed else f"fired at {moment(s.last_fired)}, not armed"]
    if s.armed and s.last_fired is not None:
        lines[0] += f" (last fired at {moment(s.last_fired)})"
    if not e.stored:
        lines[0] += " (no stored state)"
    if s.pending_since is not None and e.hold is not None:
        left = e.pending_left or timedelta(0)
        lines.append(
            f"pending since {moment(s.pending_since)} ({span(left)} of {span(e.hold)} left)"
        )
    if e.cooldown_until is not None:
        lines.append(f"in cooldown until {moment(e.cooldown_until)}")
    if s.last_report is not None:
        lines.append(f"last alerted report {s.last_report}")
    labels = dict(FIGURES)
    known = [f"{labels[name]} {format_value(f)}" for name, f in e.sent if f is not None]
    if known:
        since = "" if e.correction is not None else " (no correction since)"
        lines.append(f"figures last sent: {', '.join(known)}{since}")
    if e.correction is not None:
        lines.append(f"a correction waits: the next evaluation sends {e.correction!r}")
    lines += [f"silenced by {x.id} until {moment(x.ends_at)}" for x in e.silences]
    for held in e.deferred:
        why = f": {held.reason}" if held.reason else ""
        lines.append(f"a delivery to {held.channel} is deferred until {moment(held.until)}{why}")
    return lines + list(e.notes)


def jsonable(value: object) -> object:
    """A value for `--json`: dates in ISO 8601, lists for tuples."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    return value
