"""The delivery worker's group commit: finished attempts of concurrent deliveries are
recorded together, one transaction (one durable commit) for the group.

Promises:
- `record()` queues one finished attempt and returns once it is committed (whether its
  delivery moved), or raises StoreError when it could not be recorded. The caller holds
  its worker slot until then, so the deliveries sent but not yet recorded never exceed the
  worker's concurrency: a crash resends (same `webhook-id`) at most that many, as before.
- One flusher task at a time writes: it takes what is queued (at most `max_batch`), after
  waiting at most `max_wait` seconds for more when fewer than `max_batch` are queued and
  the previous flush found company (an idle worker's lone record is not delayed), and
  commits them with `Store.finish_many()`. Records queued while a flush runs go in the next.
- A group whose transaction fails is retried one record per transaction, so one failure
  (a lock, a bad row, a dropped connection) never drops the others; a record that still
  fails raises StoreError to its caller. Its delivery stays `sending` and is claimed
  again once its lease runs out: nothing is marked delivered without a 2xx, none is lost.
- `abandon()` is the crash path (the worker was cancelled): what is queued is dropped
  unrecorded, the flusher is cancelled (a commit already under way still lands).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from service.errors import StoreError
from service.store import Finished, Store

logger = logging.getLogger("service.delivery")

#: At most this many finished attempts per transaction.
MAX_BATCH = 64
#: A flush waits at most this long for company (seconds).
MAX_WAIT = 0.002


@dataclass
class GroupCommit:
    """Queues finished attempts and commits them in groups. Used from one event loop."""

    store: Store
    max_batch: int = MAX_BATCH
    max_wait: float = MAX_WAIT
    _queue: list[tuple[Finished, asyncio.Future[bool]]] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_wait < 0:
            raise ValueError("max_batch must be at least 1 and max_wait not negative")

    async def record(self, finished: Finished) -> bool:
        """Record one finished attempt with the next group; whether its delivery moved."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((finished, future))
        self._arrived.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        return await future

    def abandon(self) -> None:
        """Drop what is queued, unrecorded (a crash), and stop the flusher."""
        queued, self._queue = self._queue, []
        for _finished, future in queued:
            future.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None

    async def _flush_all(self) -> None:
        grouped = False
        while self._queue:
            if grouped and len(self._queue) < self.max_batch and self.max_wait > 0:
                await self._gather_for(self.max_wait)
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            grouped = len(batch) > 1
            await self._flush(batch)

    async def _gather_for(self, seconds: float) -> None:
        """Wait up to `seconds` while fewer than `max_batch` are queued."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while len(self._queue) < self.max_batch:
            left = until - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._arrived.wait()

    async def _flush(self, batch: list[tuple[Finished, asyncio.Future[bool]]]) -> None:
        items = [finished for finished, _future in batch]
        try:
            moved = await asyncio.to_thread(self.store.finish_many, items)
        except StoreError as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            logger.warning(
                "delivery: recording %d attempts together failed (%s); recording each alone",
                len(batch),
                exc,
            )
            for finished, future in batch:
                try:
                    [one] = await asyncio.to_thread(self.store.finish_many, [finished])
                except StoreError as each:
                    _settle(future, each)
                else:
                    _settle(future, one)
            return
        except BaseException as exc:  # cancelled (abandon), or a bug: no caller waits forever
            for _finished, future in batch:
                _settle(future, StoreError(f"the attempt was not recorded ({type(exc).__name__})"))
            raise
        for (_finished, future), one in zip(batch, moved, strict=True):
            _settle(future, one)


def _settle(future: asyncio.Future[bool], outcome: bool | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
