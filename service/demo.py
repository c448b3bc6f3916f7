"""`earnwatch demo`: the real daemon, offline, on the embedded defaults.

SQLite in a temporary folder, the replay provider with the bundled LUMN Q4 2025 scenario
on a fast simulated clock, the bundled demo rule file, and a local webhook receiver that
prints what it receives. It ends by itself once the scenario is over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from datetime import UTC, timedelta
from pathlib import Path
from typing import TextIO

import yaml

from service.clock import FakeClock
from service.daemon import Daemon
from service.errors import ConfigError
from service.logs import setup_logging
from service.providers.replay import DEFAULT_SCENARIO, bundled_rules, bundled_scenario
from service.replay import (
    REPLAY_CALENDAR_REFRESH,
    REPLAY_CONFIRM_WAIT,
    replay_settings,
    scenario_overrides,
    scenario_provider,
)
from service.store import open_store

DEMO_SECONDS = 40.0
#: Real seconds between two polls of the demo's daemon.
DEMO_TICK = 0.1
#: The demo's EARNWATCH_CONFIRM_WAIT lasts at least this many ticks of simulated time.
CONFIRM_TICKS = 3


class Receiver:
    """A webhook receiver on 127.0.0.1 that prints each alert as it arrives."""

    def __init__(self, clock: FakeClock, out: TextIO) -> None:
        self.clock = clock
        self.out = out
        self.received: list[dict[str, object]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/alerts"

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            alert = json.loads(await reader.readexactly(length))
            self.received.append(alert)
            when = self.clock.now().astimezone(UTC).strftime("%a %Y-%m-%d %H:%MZ")
            print(
                f"\n  [{when}] {alert['title']}\n    {alert['message']}", file=self.out, flush=True
            )
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ValueError, KeyError, ConnectionError):
            writer.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        finally:
            writer.close()


async def run_demo(
    *,
    seconds: float = DEMO_SECONDS,
    out: TextIO = sys.stdout,
    scenario_name: str = DEFAULT_SCENARIO.removesuffix(".json"),
) -> int:
    """The demo on a bundled scenario (ConfigError for one that is not bundled or has no
    bundled rules)."""
    scenario = bundled_scenario(scenario_name)
    template = bundled_rules(scenario_name)
    if template is None:
        raise ConfigError(f"the bundled scenario {scenario_name!r} has no demo rules")
    span = (scenario.end - scenario.start).total_seconds()
    speed = span / seconds
    clock = FakeClock(scenario.start, speed=speed)
    setup_logging(fmt="text", level="WARNING", secrets=())
    logging.getLogger("service.daemon").setLevel(logging.WARNING)
    receiver = Receiver(clock, out)
    url = await receiver.start()
    with tempfile.TemporaryDirectory(prefix="earnwatch-demo-") as folder:
        rules = Path(folder) / "rules.yaml"
        rules.write_text(template.replace("${DEMO_WEBHOOK_URL}", url))
        database = Path(folder) / "earnwatch.db"
        # The daemon's jobs run on the wall clock: the calendar every 30 simulated
        # minutes, as `earnwatch replay` polls it.
        refresh = (REPLAY_CALENDAR_REFRESH / speed).total_seconds()
        # A report's second provider is asked at the next poll, a tick (many simulated
        # minutes) later: the confirmation wait lasts a few ticks, so that it is asked.
        wait = max(REPLAY_CONFIRM_WAIT, timedelta(seconds=CONFIRM_TICKS * DEMO_TICK * speed))
        settings = replay_settings(
            f"sqlite:///{database}",
            calendar_refresh=f"{refresh:.3f}s",
            **scenario_overrides(scenario, confirm_wait=wait),
        )
        if scenario_name == DEFAULT_SCENARIO.removesuffix(".json"):
            bundled = "reminder, revenue miss, target, post-earnings drop"
        else:
            names = [rule["name"] for rule in yaml.safe_load(template).get("rules", [])]
            bundled = ", ".join(names)
        print(
            f"Earnwatch demo: {scenario.description}\n"
            f"Replaying {scenario.start:%Y-%m-%d %H:%MZ} to {scenario.end:%Y-%m-%d %H:%MZ} "
            f"in about {seconds:.0f} s ({span / seconds / 60:.0f} simulated minutes a second).\n"
            f"Rules: {rules.name} (bundled: {bundled}); "
            f"alerts go to a local webhook receiver:",
            file=out,
            flush=True,
        )
        started = time.monotonic()
        daemon = Daemon(
            settings,
            rules_path=rules,
            clock=clock,
            provider=scenario_provider(scenario, clock),
            env_file=None,
            until=scenario.end,
            tick=DEMO_TICK,  # a poll every 0.1 s: a few simulated minutes apart
        )
        code = await daemon.run()
        await receiver.aclose()
        store = open_store(settings.database_url)
        try:
            history = store.history(limit=50)
        finally:
            store.close()
        delivered = sum(1 for e in history for d in e.deliveries if d.status == "delivered")
        print(
            f"\nDone in {time.monotonic() - started:.0f} s: {len(history)} alert(s) fired, "
            f"{delivered} delivered. Go live: put FINNHUB_API_KEY in .env, write rules.yaml, "
            "run `earnwatch check` then `earnwatch run`.",
            file=out,
            flush=True,
        )
        print(
            f"Draw this run: earnwatch replay {scenario.name} --instant --plot "
            f"{scenario.name.split('-')[0]}.png  (needs pip install 'earnwatch[plot]')",
            file=out,
            flush=True,
        )
        return code if len(receiver.received) == len(history) else 1
