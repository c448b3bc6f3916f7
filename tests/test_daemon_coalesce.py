"""The daemon's reload coalescer: requests made while a reload runs fold into one more,
and a shutdown ends it even when the work swallowed the cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from service.coalesce import Coalescer


@pytest.mark.anyio
async def test_requests_during_a_run_fold_into_one_more_run() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    forced: list[bool] = []

    async def work(force: bool) -> None:
        forced.append(force)
        started.set()
        await release.wait()

    coalescer = Coalescer(work)
    stop = asyncio.Event()
    task = asyncio.create_task(coalescer.run(stop))
    coalescer.request()
    await started.wait()
    for _ in range(500):
        coalescer.request(force=True)
    release.set()
    await asyncio.sleep(0.05)
    assert forced == [False, True] and coalescer.runs == 2
    stop.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.anyio
async def test_a_stop_ends_it_although_the_work_swallowed_the_cancellation() -> None:
    async def work(force: bool) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # as Daemon._job does at shutdown
            await asyncio.sleep(60)

    coalescer = Coalescer(work)
    stop = asyncio.Event()
    task = asyncio.create_task(coalescer.run(stop))
    coalescer.request()
    await asyncio.sleep(0.05)
    stop.set()
    task.cancel()
    await asyncio.wait_for(task, timeout=5)  # old code: waited for the next request forever
