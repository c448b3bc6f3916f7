"""One piece of work run on request, never twice at once, with requests folded together.

The daemon reloads its rule file through this: SIGHUP and the watch tick only `request()`
a reload; any number of requests made while a reload runs fold into one more run after
it, so a burst of 500 SIGHUPs costs at most two reloads, not 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Coalescer:
    """Runs `work(force)` for requests, one run at a time; `force` is true when any of the
    requests folded into that run asked for it."""

    def __init__(self, work: Callable[[bool], Awaitable[None]]) -> None:
        self._work = work
        self._wanted = asyncio.Event()
        self._force = False
        self.runs = 0

    @property
    def pending(self) -> bool:
        return self._wanted.is_set()

    def request(self, *, force: bool = False) -> None:
        """Ask for a run (safe before `run()` started: it is then the first thing done)."""
        self._force = self._force or force
        self._wanted.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve requests until cancelled, or until `stop` is set when a run ends (the
        work may swallow a cancellation during a shutdown, as the daemon's jobs do)."""
        while not stop.is_set():
            await self._wanted.wait()
            self._wanted.clear()
            force, self._force = self._force, False
            self.runs += 1
            await self._work(force)
