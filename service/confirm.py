"""Cross-provider confirmation of a report's actuals (EARNWATCH_CONFIRM=2, issue #13 item 4).

Pure: the tolerance between two providers' figures, the verdict on a report (how many
providers agree, whether two disagree, whether its figures count as reported yet) and
whether the second provider is still worth asking. `MarketData` keeps the inputs (when the
first provider's actuals were first seen, the second provider's figures) and the verdict
with each report's history; the pipeline asks the second provider and feeds its rows in.

Tolerances: two EPS figures agree when they differ by at most $0.01, or by at most 1 % of
the smaller of the two in absolute value; two revenue figures when they differ by at most
0.5 % of the smaller. Only the figures both providers carry are compared (Nasdaq has no
revenue); two providers with no figure in common cannot confirm each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

#: EPS: an absolute tolerance in dollars, or a relative one in percent.
EPS_CENTS: Final = 0.01
EPS_PCT: Final = 1.0
REVENUE_PCT: Final = 0.5
#: How long the second provider is asked again while the two disagree, from when the first
#: provider's actuals were first seen (after that the report stays suspect until the
#: first provider's figures, re-read with the calendar, agree with the second's last ones).
SUSPECT_POLLING: Final = timedelta(hours=2)
#: Float slack, so that exactly $0.01 or exactly 1 % counts as within (1.24 - 1.23 is
#: 0.010000000000000009 in binary floating point).
_SLACK: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Figures:
    """One provider's actual EPS and revenue of one report (None: not given)."""

    eps: float | None = None
    revenue: float | None = None

    @property
    def known(self) -> bool:
        return self.eps is not None or self.revenue is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the providers' figures say about one report.

    `confirmed_by`: 0 before any actuals or while two providers disagree, 1 while only one
    provider has (comparable) figures, 2 once two agree. `suspect`: two providers disagree
    beyond the tolerance. `reported`: the figures count as reported (two agree, or one
    alone for the confirmation wait)."""

    confirmed_by: int = 0
    suspect: bool = False
    reported: bool = False


def _within(a: float, b: float, *, pct: float, absolute: float = 0.0) -> bool:
    diff = abs(a - b)
    limit = max(absolute, pct / 100.0 * min(abs(a), abs(b)))
    return diff <= limit * (1 + _SLACK) + _SLACK * 1e-3


def eps_agree(a: float, b: float) -> bool:
    """Within $0.01, or within 1 % of the smaller figure (in absolute value)."""
    return _within(a, b, pct=EPS_PCT, absolute=EPS_CENTS)


def revenue_agree(a: float, b: float) -> bool:
    """Within 0.5 % of the smaller figure (in absolute value)."""
    return _within(a, b, pct=REVENUE_PCT)


def agree(first: Figures, second: Figures) -> bool | None:
    """Whether two providers' figures agree on every figure both carry; None when they
    carry no figure in common (nothing to compare)."""
    checks: list[bool] = []
    if first.eps is not None and second.eps is not None:
        checks.append(eps_agree(first.eps, second.eps))
    if first.revenue is not None and second.revenue is not None:
        checks.append(revenue_agree(first.revenue, second.revenue))
    return all(checks) if checks else None


def verdict(
    first: Figures, second: Figures | None, seen: datetime | None, now: datetime, wait: timedelta
) -> Verdict:
    """The verdict at `now` on a report whose first provider has `first` (its actuals first
    seen at `seen`) and whose second provider has `second` (None: none yet)."""
    if not first.known:
        return Verdict()
    agreed = agree(first, second) if second is not None else None
    if agreed is True:
        return Verdict(confirmed_by=2, reported=True)
    if agreed is False:
        return Verdict(confirmed_by=0, suspect=True)
    waited = seen is not None and now - seen >= wait
    return Verdict(confirmed_by=1, reported=waited)


def revised(before: Verdict, after: Verdict) -> bool:
    """Whether the first provider changed figures that two providers had agreed on (a
    correction): the second provider's reading is then of the old figures, not a
    disagreement, and the corrected ones are confirmed afresh (dated when first seen,
    the second provider asked again) rather than judged suspect against a stale answer."""
    return before.confirmed_by == 2 and after.suspect


def asks_second(found: Verdict, seen: datetime | None, now: datetime, wait: timedelta) -> bool:
    """Whether the second provider is still asked: while only one provider has figures,
    until the wait ends; while the two disagree, for SUSPECT_POLLING; never once they
    agree or before the first provider's actuals were seen."""
    if seen is None or found.confirmed_by == 2:
        return False
    if found.suspect:
        return now - seen < SUSPECT_POLLING
    return found.confirmed_by == 1 and now - seen < wait
