"""When a rule whose result moves with the clock alone must next be evaluated (issue #16).

With no new data, a rule that reads `hours_to_earnings`, `days_to_earnings` or `session`,
or holds a running `for`, can change its outcome only when the clock gets somewhere:

- `hours_to_earnings <op> c` changes when the hours cross `c`, at the report's
  publication minus `c` hours: from the value at evaluation, `now + (hours - c) h`;
- `days_to_earnings`, and which report a rule sees, change at New York midnight;
- a running `for` ends at `pending_since + for`.

So each (rule, symbol) gets a "wake": the earliest of those moments, a little early
(WAKE_MARGIN, against rounding), and the time-only pass evaluates only the pairs whose wake
has come. A rule that reads the clock any other way (`session`, arithmetic on the hours, a
comparison with another variable) wakes at every pass, as before. Evaluating early is
harmless (the rule's own condition decides, and the wake is computed again); evaluating
late is what must never happen, so every doubt wakes sooner. New data for a symbol
evaluates all its rules anyway (and computes their wakes again); a new rule set or new
states (a reload, a new leader) start over with every pair due.

Pure: no IO, no clock reads.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from service.engine import RuleState
    from service.market import Value
    from service.rules import CompiledRule, RuleSet

#: Seconds a wake comes before the moment it is for: a threshold's crossing is computed in
#: floating point, so the pass at or after the exact moment must find the pair due.
WAKE_MARGIN: Final = 1.0
#: No moment of the clock can change the pair's outcome (nothing to wake for).
NEVER: Final = math.inf
_NEW_YORK: Final = ZoneInfo("America/New_York")

Key = tuple[str, str]  # (rule name, symbol)


def next_midnight(now: datetime) -> float:
    """The next New York midnight after `now`, as a POSIX timestamp."""
    today = now.astimezone(_NEW_YORK).date()
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=_NEW_YORK).timestamp()


def next_wake(
    rule: CompiledRule,
    values: Mapping[str, Value],
    state: RuleState,
    now: float,
    midnight: float,
) -> float:
    """When (a POSIX timestamp) the pair must next be evaluated with no new data: `now`
    or earlier for the next pass, NEVER when no moment of the clock alone can change it.
    `state` is its state after the evaluation at `now`; `midnight` is `next_midnight`."""
    wake = NEVER
    hold = rule.hold
    if hold is not None and state.pending_since is not None:
        wake = state.pending_since.timestamp() + hold.total_seconds() - WAKE_MARGIN
    if not rule.time_dependent:
        return wake
    if midnight < wake:  # min(wake, midnight), as `min` keeps the first of equals
        wake = midnight
    # Both conditions' thresholds at once: either one that reads the clock some other
    # way (no `clock`: a stand-in condition) wakes at every pass.
    thresholds = getattr(rule.when, "clock", None)
    clear = rule.clear_when
    if clear is not None:
        more = getattr(clear, "clock", None)
        if thresholds is None or more is None:
            return now
        thresholds += more
    elif thresholds is None:
        return now
    if not thresholds:
        return wake
    hours = values.get("hours_to_earnings")
    if hours.__class__ is not float and (
        not isinstance(hours, int | float) or isinstance(hours, bool)
    ):
        return wake  # no report: what changes it is new data, or the day
    for threshold in thresholds:
        until = (hours - threshold) * 3600.0  # seconds until the hours cross it
        if until > -WAKE_MARGIN:  # not crossed yet, or only just (rounding)
            moment = now + until - WAKE_MARGIN
            if moment < wake:
                wake = moment
    return wake


class Wakes:
    """The wake of every (rule, symbol) pair that moves with the clock, for one rule set.

    Filled by `update` from each evaluation's `Evaluation.wakes`; `due` says which pairs a
    time-only pass must evaluate. Until a pass of every such pair has been recorded for
    the current rule set (`update` after a pass planned while `due` returned None), `due`
    returns None: evaluate them all."""

    def __init__(self) -> None:
        self.ruleset: RuleSet | None = None
        self.at: dict[Key, float] = {}
        self._heap: list[tuple[float, str, str]] = []
        #: Pairs `due` returned that no evaluation has given a new wake yet (a pass that
        #: failed must not lose them).
        self._overdue: set[Key] = set()

    def reset(self) -> None:
        """Forget every wake (new states: a new leader's, say): all pairs are due."""
        self.ruleset = None
        self.at = {}
        self._heap = []
        self._overdue = set()

    def update(self, ruleset: RuleSet, wakes: Mapping[Key, float]) -> None:
        """Record the wakes of one evaluation of `ruleset`. An evaluation planned without
        wakes for this rule set (`due` was None) covered every pair: it replaces them."""
        if ruleset is not self.ruleset:
            self.reset()
            self.ruleset = ruleset
        at, heap, overdue = self.at, self._heap, self._overdue
        for key, wake in wakes.items():
            overdue.discard(key)
            if at.get(key) == wake:
                continue
            at[key] = wake
            if wake != NEVER:
                heapq.heappush(heap, (wake, key[0], key[1]))
        if len(heap) > 4 * len(at) + 1024:  # stale entries of wakes moved since
            self._heap = [(w, r, s) for (r, s), w in at.items() if w != NEVER]
            heapq.heapify(self._heap)

    def due(self, ruleset: RuleSet, now: datetime) -> set[Key] | None:
        """The pairs whose wake has come at `now`, or None when this rule set's wakes are
        not all known (evaluate every pair that moves with the clock)."""
        if ruleset is not self.ruleset:
            return None
        moment = now.timestamp()
        heap, at, overdue = self._heap, self.at, self._overdue
        while heap and heap[0][0] <= moment:
            wake, rule, symbol = heapq.heappop(heap)
            if at.get((rule, symbol)) == wake:  # else a stale entry: the wake moved
                del at[rule, symbol]  # until `update` gives it a new one
                overdue.add((rule, symbol))
        return set(overdue)
