"""What `/healthz` reports, kept apart from the web edge: the pipeline, the recorder and
the quote watch tell `HealthState` what happened, with `now`, and `check(now)` says
whether the process is healthy and, if not, why. Pure: no IO, no clock reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

#: The longest reason kept (a provider's or the store's error, one line).
MAX_REASON: Final = 300


class HealthState:
    """What `/healthz` reports, from what the daemon tells it.

    Unhealthy when the scheduler is not running; when `max_failures` provider calls in a
    row failed; when the last success is older than `stale_after`; or, once `start_grace`
    has passed since `started_at`, when no provider call succeeded yet. The grace starts at
    the first `check()` when `started_at` is not given. A standby replica (`leading` False)
    makes no provider calls, so only its scheduler counts; `set_leading(True, now)` restarts
    the grace, so a new leader is not judged on the old leader's silence.

    A leader is also unhealthy while recording fails (`mark_recording_failure`, until
    `mark_recording_success`), and, with `evaluation_stale` set, when its last evaluation
    pass (`mark_evaluated`) is older than that.

    Freshness: once `watch_prices` names the symbols whose prices rules read, and how old a
    price may get (`prices_stale_after`), the process is unhealthy while any of them was not
    answered (`mark_prices`) within that window. Calls succeeding for some symbols are not
    enough: one stalled symbol's rules are as blind as if every call failed.

    A trade stream that is down (`set_stream`) while REST polling covers is degraded, not
    failed: the check stays healthy, saying `ok (degraded: stream down since T)`.
    """

    def __init__(
        self,
        stale_after: timedelta,
        *,
        started_at: datetime | None = None,
        start_grace: timedelta | None = None,
        max_failures: int = 3,
    ) -> None:
        self.stale_after = stale_after
        self.start_grace = stale_after if start_grace is None else start_grace
        self.max_failures = max_failures
        self.started_at = started_at
        self.scheduler_running = False
        self.leading = True
        self.last_success: datetime | None = None
        self.last_failure: datetime | None = None
        self.last_error: str | None = None
        self.consecutive_failures = 0
        self.recording_error: str | None = None  # set while the store refuses writes
        #: With a value, a leader whose last evaluation pass is older than this is
        #: unhealthy (a pass stuck or failing every time swallows every alert).
        self.evaluation_stale: timedelta | None = None
        self.last_evaluation: datetime | None = None
        self.prices_stale_after: timedelta | None = None
        self._prices_seen: dict[str, datetime] = {}
        #: When the trade stream went down (None: up, or no stream). REST polling covers
        #: for it, so this degrades the "ok" and never fails the check by itself.
        self.stream_down_since: datetime | None = None

    def set_leading(self, leading: bool, now: datetime) -> None:
        """This replica became leader (polls from now on) or standby (polls nothing)."""
        if leading and not self.leading:
            self.started_at = now
            self.last_success = self.last_failure = self.last_error = None
            self.consecutive_failures = 0
            self._prices_seen = {}
        self.leading = leading

    def watch_prices(
        self, symbols: Iterable[str], stale_after: timedelta | None, now: datetime
    ) -> None:
        """The prices of `symbols` must be answered at least every `stale_after` (None: no
        check). A symbol newly watched gets a full window from `now`; so does every symbol
        when the window shrinks (at the market open, say), since the old pace was allowed."""
        shrinks = (
            stale_after is not None
            and self.prices_stale_after is not None
            and stale_after < self.prices_stale_after
        )
        seen = self._prices_seen
        self._prices_seen = {
            s: max(seen[s], now) if shrinks and s in seen else seen.get(s, now) for s in symbols
        }
        self.prices_stale_after = stale_after

    def mark_prices(self, now: datetime, symbols: Iterable[str]) -> None:
        """The provider answered the prices of `symbols` at `now`."""
        for symbol in symbols:
            if symbol in self._prices_seen:
                self._prices_seen[symbol] = max(now, self._prices_seen[symbol])

    def stale_prices(self, now: datetime) -> list[str]:
        """The watched symbols whose price was not answered within `prices_stale_after`."""
        window = self.prices_stale_after
        if window is None:
            return []
        return sorted(s for s, seen in self._prices_seen.items() if now - seen > window)

    def set_stream(self, connected: bool, now: datetime) -> None:
        """The trade stream connected, or went down at `now` (the first time counts)."""
        if connected:
            self.stream_down_since = None
        elif self.stream_down_since is None:
            self.stream_down_since = now

    def mark_provider_success(self, now: datetime) -> None:
        """A provider call succeeded at `now`."""
        self.last_success = now
        self.consecutive_failures = 0

    def mark_provider_failure(self, now: datetime, reason: str) -> None:
        """A provider call failed at `now`; `reason` is shown by `/healthz`, so it must be
        a message free of secrets (every `EarnwatchError` message is)."""
        self.last_failure = now
        self.last_error = " ".join(reason.split())[:MAX_REASON]
        self.consecutive_failures += 1

    def mark_recording_failure(self, now: datetime, reason: str) -> None:
        """Alerts and states could not be written at `now` (they wait in memory)."""
        self.recording_error = " ".join(reason.split())[:MAX_REASON] or "store error"

    def mark_recording_success(self, now: datetime) -> None:
        """Alerts and states were written at `now`."""
        self.recording_error = None

    def mark_evaluated(self, now: datetime) -> None:
        """An evaluation pass completed at `now`."""
        self.last_evaluation = now

    def _evaluation_problem(self, now: datetime) -> str | None:
        """Why recording or evaluation is unhealthy, or None. Apart from the provider
        checks below so that each can change without touching the other."""
        if self.recording_error is not None:
            return f"recording failed: {self.recording_error}"
        if self.evaluation_stale is None:
            return None
        marks = [m for m in (self.last_evaluation, self.started_at) if m is not None]
        if marks and now - max(marks) > self.evaluation_stale:  # a new leader gets its grace
            return f"no evaluation pass in the last {self.evaluation_stale.total_seconds():g} s"
        return None

    def check(self, now: datetime) -> tuple[bool, str]:
        """(healthy, reason) at `now`; when healthy the reason is "ok", "starting" or
        "standby"."""
        if self.started_at is None:
            self.started_at = now
        if not self.scheduler_running:
            return False, "scheduler not running"
        if not self.leading:
            return True, "standby"
        problem = self._evaluation_problem(now)
        if problem is not None:
            return False, problem
        error = self.last_error or "no provider call since"
        if self.max_failures and self.consecutive_failures >= self.max_failures:
            return False, f"{self.consecutive_failures} provider calls failed in a row: {error}"
        if stale := self.stale_prices(now):
            assert self.prices_stale_after is not None
            shown = ", ".join(stale[:5]) + (", ..." if len(stale) > 5 else "")
            window = self.prices_stale_after.total_seconds()
            why = f"; last provider error: {self.last_error}" if self.last_error else ""
            return False, f"prices of {len(stale)} symbol(s) older than {window:g} s: {shown}{why}"
        if self.last_success is None:
            if now - self.started_at < self.start_grace:
                return True, "starting"
            if self.last_failure is None:
                return False, "starting: no provider call yet"
            return False, f"{self._no_success_since()}: {error}"
        if now - self.last_success > self.stale_after:
            return False, f"{self._no_success_since()}: {error}"
        if self.stream_down_since is not None:
            since = self.stream_down_since.replace(microsecond=0).isoformat()
            return True, f"ok (degraded: stream down since {since})"
        return True, "ok"

    def _no_success_since(self) -> str:
        return f"no successful provider call in the last {self.stale_after.total_seconds():g} s"
