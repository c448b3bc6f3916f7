"""The jobs in flight: each scheduled job runs wrapped, so that it never raises into the
scheduler (a failure is logged, with its traceback only when unexpected) and can be
drained at shutdown: given a grace to end by itself, then cut short."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from service.errors import EarnwatchError

log = logging.getLogger("service.daemon")

Work = Callable[[], Awaitable[None]]


class Jobs:
    """Wraps job bodies and keeps the running ones, for `drain()`."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self.stopping = stopping
        self.inflight: set[asyncio.Task[None]] = set()

    def wrap(self, name: str, work: Work) -> Work:
        """`work` as a job: skipped once stopping, logged instead of raised, drainable."""

        async def run() -> None:
            if self.stopping.is_set():
                return
            task = asyncio.current_task()
            assert task is not None
            self.inflight.add(task)
            try:
                await work()
            except asyncio.CancelledError:
                if not self.stopping.is_set():
                    raise
                log.info("%s job cut short by shutdown", name)
            except (EarnwatchError, OSError) as exc:
                log.error("%s job failed: %s", name, exc)
            except Exception:
                log.exception("%s job failed unexpectedly", name)
            finally:
                self.inflight.discard(task)

        return run

    async def drain(self, grace: float) -> None:
        """Let the jobs in flight end within `grace` seconds, then cut the rest short."""
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=grace)
        for task in set(self.inflight):
            task.cancel()
        if self.inflight:
            await asyncio.gather(*self.inflight, return_exceptions=True)
