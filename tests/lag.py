"""The event loop's lag while a running daemon reloads a large rule file, measured in
process: a task that sleeps 10 ms in a loop records how late it wakes. Used by
tests/test_daemon_reload.py and bench/reload_lag.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from service.config import load_settings
from service.daemon import Daemon
from service.market import EarningsEvent, PriceTargets, Quote
from tests.daemon_setup import many_rules

SLEEP = 0.010


class IdleProvider:
    """Quotes far below every threshold, no calendar, no targets: nothing ever fires."""

    name = "idle"
    max_batch = 100

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        return {s: Quote(s, 10.0) for s in symbols}

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        return []

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        return None

    async def aclose(self) -> None:
        pass


class LagMonitor:
    """Sleeps SLEEP seconds in a loop and records each overshoot, in seconds."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(SLEEP)
            self.lags.append(time.perf_counter() - started - SLEEP)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    @property
    def max(self) -> float:
        return max(self.lags, default=0.0)

    @property
    def p99(self) -> float:
        ordered = sorted(self.lags)
        return ordered[int(len(ordered) * 0.99)] if ordered else 0.0


@dataclass(frozen=True)
class ReloadLag:
    rules: int
    start_load: float  # seconds to load the file at start
    reload: float  # seconds from the request to the end of the reload and its evaluation
    max_lag: float
    p99_lag: float
    samples: int


async def measure_reload(folder: Path, rules: int) -> ReloadLag:
    """Start a daemon on `rules` rules, then reload an edit of every threshold while the
    loop's lag is measured."""
    path = folder / "rules.yaml"
    path.write_text(many_rules(rules))
    env = folder / ".env"
    env.write_text("HOOK_URL=http://127.0.0.1:9/hook\n")  # never called: nothing fires
    env.chmod(0o600)
    settings = load_settings(
        env_file=None,
        database_url=f"sqlite:///{folder / 'earnwatch.db'}",
        http="off",
        allow_private_targets=True,
        rules_watch="1h",  # only the requested reload runs
    )
    daemon = Daemon(settings, rules_path=path, provider=IdleProvider(), env_file=env)
    started = time.perf_counter()
    running = asyncio.create_task(daemon.run())
    while not daemon.started.is_set():
        assert not running.done(), "the daemon ended before it ran"
        await asyncio.sleep(0.05)
    start_load = time.perf_counter() - started
    await asyncio.sleep(1.0)  # the first calendar and quote polls
    old = daemon.app.rules()
    path.write_text(many_rules(rules, threshold=2000.0))
    monitor = LagMonitor()
    monitor.start()
    asked = time.perf_counter()
    daemon.request_reload()
    while daemon.app.rules() is old or daemon.reloads.pending or daemon.jobs.inflight:
        await asyncio.sleep(0.01)
    took = time.perf_counter() - asked
    await asyncio.sleep(0.2)
    await monitor.stop()
    daemon.stopping.set()
    assert await running == 0
    return ReloadLag(rules, start_load, took, monitor.max, monitor.p99, len(monitor.lags))
