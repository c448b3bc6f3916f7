"""`earnwatch explain RULE [--symbol SYM] [--json]`: reads what the daemon stored (rule
states, the last known market data, active silences, deferred deliveries), explains the
rule for each of its symbols (`service/explain.py`) and prints one block per symbol or one
JSON object. It only reads the database, so it runs beside the daemon, and never calls a
provider: what it shows is what the daemon last knew.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from service.config import Settings
from service.digest import format_window
from service.errors import StoreError
from service.explain import (
    DigestExplanation,
    Explanation,
    Held,
    SilenceLike,
    explain,
    explain_digest,
    jsonable,
    local,
    moment,
    span,
    state_text,
)
from service.figures import format_value
from service.marketdata import MarketData
from service.rules import CompiledRule, DigestRule, RuleSet
from service.rules.trace import Step, Trace

if TYPE_CHECKING:
    from service.store import Store

#: How many alerts with a deferred delivery `explain` looks through for the rule.
DEFERRED_LOOKUP = 200


def show_explain(
    settings: Settings,
    ruleset: RuleSet,
    name: str,
    symbol: str | None,
    *,
    as_json: bool,
    now: datetime,
) -> tuple[int, str]:
    """(exit code, text): 1 with one line for an unknown rule or symbol, or a database
    that cannot be read."""
    digest = ruleset.digest(name)
    if digest is not None:
        problem = _unwatched(name, digest.symbols, symbol)
        if problem is not None:
            return 1, problem
        return _show_digest(settings, digest, as_json=as_json, now=now)
    rule = ruleset.rule(name)
    if rule is None:
        return 1, _no_rule(ruleset, name)
    problem = _unwatched(name, rule.symbols, symbol)
    if problem is not None:
        return 1, problem
    symbols = rule.symbols if symbol is None else (symbol.strip().upper(),)
    try:
        with _reading(settings) as store:
            states = store.load_states()
            saved = store.load_market_data("market")
            silences = active_silences(store, now)
            deferred = _deferred(store, rule.name)
    except StoreError as exc:
        return 1, f"explain: {exc}"
    data = MarketData.from_json(saved.data_json) if saved is not None else MarketData()
    data.confirming = settings.confirm_wait_if_on is not None  # `reported` as the daemon sees it
    saved_at = saved.updated_at if saved is not None else None
    explained = [
        explain(
            rule,
            s,
            data,
            states.get((rule.name, s)),
            now,
            silences=silences,
            deferred=deferred.get(s, ()),
        )
        for s in symbols
    ]
    if as_json:
        return 0, json.dumps(_json(rule, explained, saved_at, now), indent=2)
    return 0, _text(rule, explained, saved_at, now)


def _no_rule(ruleset: RuleSet, name: str) -> str:
    if name in ruleset.disabled:
        return f"explain: rule {name!r} is disabled in the rule file"
    known = ", ".join([r.name for r in ruleset.rules] + [d.name for d in ruleset.digests])
    return f"explain: no rule {name!r} in the rule file (rules: {known or 'none'})"


def _unwatched(name: str, watched: Sequence[str], symbol: str | None) -> str | None:
    """The one line for a `--symbol` the rule does not watch, or None."""
    if symbol is None or symbol.strip().upper() in watched:
        return None
    wanted = symbol.strip().upper()
    return f"explain: rule {name!r} does not watch {wanted} (it watches {', '.join(watched)})"


def _show_digest(
    settings: Settings, rule: DigestRule, *, as_json: bool, now: datetime
) -> tuple[int, str]:
    """A digest rule: its next firing and the message it would send, from the database."""
    try:
        with _reading(settings) as store:
            saved = store.load_market_data("market")
            silences = active_silences(store, now)
            last = store.history(limit=1, rule=rule.name)
    except StoreError as exc:
        return 1, f"explain: {exc}"
    data = MarketData.from_json(saved.data_json) if saved is not None else MarketData()
    saved_at = saved.updated_at if saved is not None else None
    last_sent = last[0].fired_at if last else None
    e = explain_digest(rule, data, now, silences=silences, last_sent=last_sent)
    if as_json:
        return 0, json.dumps(_digest_json(e, saved_at), indent=2)
    lines = [
        f"rule        {rule.name}",
        f"digest      {rule.expression} ({rule.tz.key}), the {format_window(rule.window)}"
        " from each firing",
        _data_line(saved_at, now),
        f"verdict     {e.verdict}",
        f"last sent   {local(last_sent, rule) if last_sent is not None else 'never'}",
    ]
    for i, text in enumerate((e.message or "").splitlines()):
        lines.append(f"{'message' if i == 0 else '':<10}  {text}")
    return 0, "\n".join(lines)


@contextmanager
def _reading(settings: Settings) -> Iterator[Store]:
    """The daemon's store, closed at the end; a StoreError opening or reading it is the
    caller's to say in one line."""
    from service.parts import store_for

    store = store_for(settings)
    try:
        yield store
    finally:
        store.close()


def _data_line(saved_at: datetime | None, now: datetime) -> str:
    if saved_at is None:
        return "data        no market data stored yet (has the daemon run?)"
    age = span(max(now - saved_at, timedelta(0)))
    return f"data        saved at {moment(saved_at)} ({age} ago), read at {moment(now)}"


def active_silences(store: Store, now: datetime) -> list[SilenceLike]:
    """The store's active silences, or none on a store without silences (a database from
    before they existed)."""
    read = getattr(store, "silences", None)
    if read is None:
        return []
    return list(read(now))


def _deferred(store: Store, rule: str) -> dict[str, list[Held]]:
    """The rule's deferred deliveries by symbol."""
    out: dict[str, list[Held]] = {}
    for entry in store.history(limit=DEFERRED_LOOKUP, rule=rule, status="deferred"):
        for d in entry.deliveries:
            if d.status == "deferred":
                held = Held(d.channel, d.next_attempt_at, d.hold_reason)
                out.setdefault(entry.symbol, []).append(held)
    return out


# --- human output -------------------------------------------------------------------------


def _text(
    rule: CompiledRule, explained: Sequence[Explanation], saved_at: datetime | None, now: datetime
) -> str:
    head = [f"rule        {rule.name}", f"when        {rule.when.source}"]
    if rule.clear_when is not None:
        head.append(f"clear_when  {rule.clear_when.source}")
    head.append(_data_line(saved_at, now))
    blocks = ["\n".join(head)]
    blocks += [_block(e) for e in explained]
    return "\n\n".join(blocks)


def _block(e: Explanation) -> str:
    lines = [e.symbol, f"  verdict     {e.verdict}"]
    for i, fact in enumerate(state_text(e)):
        lines.append(f"  {'state' if i == 0 else '':<10}  {fact}")
    width = max((len(n) for n in e.values), default=0)
    shown = {n: format_value(r.value) for n, r in e.values.items()}
    value_width = max((len(v) for v in shown.values()), default=0)
    for i, (name, reading) in enumerate(e.values.items()):
        age = "age unknown" if reading.age is None else f"{span(reading.age)} old"
        label = "variables" if i == 0 else ""
        lines.append(f"  {label:<10}  {name:<{width}}  {shown[name]:>{value_width}}  {age}")
    traces = [("when", e.when)] + ([("clear_when", e.clear)] if e.clear is not None else [])
    text_width = max((len(s.text) for _label, t in traces for s in t.steps), default=0)
    for label, t in traces:
        lines.append(f"  {label:<10}  {truth(t.value)}")
        for s in t.steps:
            lines.append(f"  {'':<10}  {truth(s.value):<7}  {s.text:<{text_width}}  {_sides(s)}")
    return "\n".join(line.rstrip() for line in lines)


def truth(value: object) -> str:
    """A condition's value for a reader: true, false or unknown."""
    return "unknown" if value is None else format_value(value)  # type: ignore[arg-type]


def _sides(s: Step) -> str:
    """The step's comparison with its values: `7.2 > 7.56`, or `(unknown: eps_actual)`."""
    if s.op is None:
        shown = format_value(s.left)  # type: ignore[arg-type]
    else:
        right = s.right
        shown_right = (
            "[" + ", ".join(format_value(v) for v in right) + "]"
            if isinstance(right, tuple)
            else format_value(right)
        )
        shown = f"{format_value(s.left)} {s.op} {shown_right}"  # type: ignore[arg-type]
    if s.error is not None:
        return f"{shown}  (failed: {s.error})"
    if s.value is None:
        return f"{shown}  (unknown: {', '.join(s.unknown)})"
    return shown


# --- JSON ---------------------------------------------------------------------------------


def _json(
    rule: CompiledRule, explained: Sequence[Explanation], saved_at: datetime | None, now: datetime
) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "when": rule.when.source,
        "clear_when": rule.clear_when.source if rule.clear_when is not None else None,
        "now": now.astimezone(UTC).isoformat(),
        "data_saved_at": saved_at.astimezone(UTC).isoformat() if saved_at else None,
        "symbols": [_symbol_json(e) for e in explained],
    }


def _digest_json(e: DigestExplanation, saved_at: datetime | None) -> dict[str, Any]:
    rule = e.rule
    return {
        "rule": rule.name,
        "digest": rule.expression,
        "tz": rule.tz.key,
        "window_seconds": rule.window.total_seconds(),
        "now": jsonable(e.now),
        "data_saved_at": jsonable(saved_at),
        "next_firing": jsonable(e.next_firing),
        "reports": e.reports,
        "message": e.message,
        "last_sent": jsonable(e.last_sent),
        "silenced_by": [{"id": x.id, "until": jsonable(x.ends_at)} for x in e.silences],
        "verdict": e.verdict,
    }


def _symbol_json(e: Explanation) -> dict[str, Any]:
    s = e.state
    left = e.pending_left
    return {
        "symbol": e.symbol,
        "value": e.when.value,
        "clear_value": e.clear.value if e.clear is not None else None,
        "unknown": list(e.when.unknown),
        "verdict": e.verdict,
        "values": {
            name: {
                "value": jsonable(r.value),
                "age_seconds": r.age.total_seconds() if r.age is not None else None,
            }
            for name, r in e.values.items()
        },
        "state": {
            "stored": e.stored,
            "armed": s.armed,
            "last_fired": jsonable(s.last_fired),
            "pending_since": jsonable(s.pending_since),
            "pending_left_seconds": left.total_seconds() if left is not None else None,
            "cooldown_until": jsonable(e.cooldown_until),
            "last_report": s.last_report,
            "silenced_by": [{"id": x.id, "until": jsonable(x.ends_at)} for x in e.silences],
            "deferred": [
                {"channel": h.channel, "until": jsonable(h.until), "reason": h.reason}
                for h in e.deferred
            ],
            "notes": list(e.notes),
            "amended": {
                "sent": dict(e.sent),
                "correction": e.correction,
            }
            if e.sent
            else None,
        },
        "comparisons": _steps_json("when", e.when)
        + (_steps_json("clear_when", e.clear) if e.clear is not None else []),
    }


def _steps_json(condition: str, t: Trace) -> list[Mapping[str, Any]]:
    return [
        {
            "condition": condition,
            "text": s.text,
            "op": s.op,
            "left": jsonable(s.left),
            "right": jsonable(s.right),
            "value": s.value,
            "unknown": list(s.unknown),
            "error": s.error,
        }
        for s in t.steps
    ]
