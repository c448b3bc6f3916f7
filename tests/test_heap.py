"""`service/heap.py`: the heap a rule load freed goes back to the system (glibc's
`malloc_trim`), after the daemon's start, after each calendar cycle and after each reload
that read a new file; a no-op where the C library has no such call."""

from __future__ import annotations

import asyncio
import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from service import heap
from service.config import load_settings
from service.daemon import Daemon
from tests.daemon_setup import many_rules
from tests.lag import IdleProvider

#: Frees ~100 MiB of 1 KiB blocks (malloc's, not Python's small-object arenas) while one
#: block allocated after them keeps the heap's top in use, so that free() alone cannot
#: shrink the heap; prints the resident KiB before and after `trim()`.
FREED_HEAP = """\
from service import heap

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

blocks = [bytes(1024) + bytes([i % 256]) for i in range(100_000)]
pin = [bytearray(1024) for _ in range(10)]
del blocks
before = rss()
print(heap.trim(), before, rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; glibc")
def test_trim_returns_the_freed_heap_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FREED_HEAP],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    called, before, after = done.stdout.split()
    assert called == "True"
    assert int(before) - int(after) > 50 * 1024, done.stdout  # of the ~100 MiB freed


def test_trim_does_nothing_where_the_c_library_has_no_malloc_trim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Musl:  # a C library without glibc's extensions
        def __init__(self, name: object) -> None:
            pass

    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", Musl)
    try:
        assert heap.trim() is False
    finally:
        heap._malloc_trim.cache_clear()


def test_the_daemon_trims_after_its_start_each_calendar_cycle_and_each_reload_of_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trims: list[str] = []
    monkeypatch.setattr(heap, "trim", lambda: trims.append("trim") or True)
    path = tmp_path / "rules.yaml"
    path.write_text(many_rules(20))
    env = tmp_path / ".env"
    env.write_text("HOOK_URL=http://127.0.0.1:9/hook\n")  # never called: nothing fires
    env.chmod(0o600)
    settings = load_settings(
        env_file=None,
        database_url=f"sqlite:///{tmp_path / 'earnwatch.db'}",
        http="off",
        allow_private_targets=True,
        rules_watch="1h",  # only the requested reloads run
    )

    async def reload(daemon: Daemon) -> None:
        daemon.request_reload()
        await asyncio.sleep(0.05)
        while daemon.reloads.pending or daemon.jobs.inflight:
            await asyncio.sleep(0.01)

    async def scenario() -> list[int]:
        daemon = Daemon(settings, rules_path=path, provider=IdleProvider(), env_file=env)
        running = asyncio.create_task(daemon.run())
        while not daemon.started.is_set():
            assert not running.done(), "the daemon ended before it ran"
            await asyncio.sleep(0.02)
        for _ in range(500):  # the start, then the first calendar cycle (a job)
            if len(trims) >= 2:
                break
            await asyncio.sleep(0.02)
        counts = [len(trims)]
        await reload(daemon)  # the same file: nothing was parsed
        counts.append(len(trims))
        path.write_text(many_rules(20, threshold=2000.0))
        await reload(daemon)  # a new rule set
        counts.append(len(trims))
        path.write_text("version: 1\nrules: [\n")  # refused: the old rules keep running
        await reload(daemon)
        counts.append(len(trims))
        daemon.stopping.set()
        assert await running == 0
        return counts

    assert asyncio.run(scenario()) == [2, 2, 3, 4]
