"""The application root: every part of one Earnwatch process, built once from the settings.

    settings ─▶ rule file ─▶ provider (+ quote watch) ─▶ notifiers ─▶ heartbeat
             ─▶ store ─▶ leadership ─▶ delivery worker ─▶ stages ─▶ pipeline

`App.open()` builds them in that order, each fully (nothing is `None` afterwards), and
`aclose()` closes them in the reverse order; a part that fails to build closes the ones
before it. The clock is chosen here and handed to every part that reads time. `earnwatch
run` and `demo` run an App inside the daemon (`service/daemon.py`, which only schedules
its cycle methods, handles signals and shuts down in order); the one-shot commands build
the single part they need with the builders in `service/parts.py`, which the App uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service import heap, parts
from service.clock import Clock, SystemClock
from service.config import Settings
from service.delivery import DeliveryWorker
from service.errors import ConfigError, RuleFileError
from service.health import HealthState
from service.heartbeat import Heartbeat, build_heartbeat
from service.logs import SecretMask
from service.marketdata import MarketData
from service.metrics import Metrics
from service.notify.base import ChannelConfig, Notifier
from service.pipeline import Cadence, Pipeline, second_opinion_of
from service.providers.base import Provider
from service.providers.watch import QuoteWatch
from service.rulefile import RuleFile
from service.rules import RuleSet
from service.store import Store
from service.store.leader import Leader, leadership_for
from service.web import WebServer, refusal, start_web

if TYPE_CHECKING:  # imported when a stream is configured
    from service.providers.finnhub_stream import FinnhubStream, Trade

log = logging.getLogger(__name__)


class App:
    """One process's parts. Build with `await App.open(...)`; close with `aclose()`."""

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        rule_file: RuleFile,
        metrics: Metrics,
        health: HealthState,
        provider: Provider,
        notifiers: Mapping[str, Notifier],
        heartbeat: Heartbeat | None,
        store: Store,
        leadership: Leader,
        worker: DeliveryWorker,
        pipeline: Pipeline,
        exits: contextlib.AsyncExitStack,
        until: datetime | None = None,
    ) -> None:
        """Use `App.open()`. `heartbeat` is None only when EARNWATCH_HEARTBEAT_URL is unset;
        `until` ends a replay once it is reached and the outbox is empty."""
        self.settings = settings
        self.clock = clock
        self.rule_file = rule_file
        self.metrics = metrics
        self.health = health
        self.provider = provider
        self.notifiers = notifiers
        self.heartbeat = heartbeat
        self.store = store
        self.leadership = leadership
        self.worker = worker
        self.pipeline = pipeline
        self.until = until
        self._exits = exits
        self.stream: FinnhubStream | None = None  # set by `open` when one is configured
        self._stream_task: asyncio.Task[None] | None = None
        self._leading: bool | None = None  # None before the first step: its result applies

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        rules_path: Path,
        clock: Clock | None = None,
        provider: Provider | None = None,
        env_file: str | Path | None = ".env",
        mask: SecretMask | None = None,
        until: datetime | None = None,
    ) -> App:
        """Every part, the ones that can refuse a bad setting or rule file first, then the
        database. Raises what the first part to fail raised (RuleFileError, OSError,
        ConfigError, StoreError), with the parts built before it closed."""
        clock = clock or SystemClock()
        metrics = Metrics()
        health = parts.health_for(settings)
        rule_file = parts.rule_file_for(settings, rules_path, env_file=env_file, mask=mask)
        ruleset = await asyncio.to_thread(rule_file.load)
        metrics.set_rules_loaded(len(ruleset.rules))
        log.info("rules %s: %s", rule_file.path, ruleset.summary())
        provider_built = provider is None  # a given provider (demo, replay) has no stream
        async with contextlib.AsyncExitStack() as exits:
            provider = provider or parts.providers_for(settings, clock)
            exits.push_async_callback(provider.aclose)
            notifiers = parts.notifiers_for(settings)
            for notifier in notifiers.values():
                exits.push_async_callback(notifier.aclose)
            heartbeat = build_heartbeat(settings, lambda: health.check(clock.now()), metrics)
            if heartbeat is not None:
                exits.push_async_callback(heartbeat.aclose)
            store = await asyncio.to_thread(parts.store_for, settings, daemon=True)
            exits.push_async_callback(asyncio.to_thread, store.close)
            leadership = leadership_for(settings.database_url, settings.failover)
            exits.push_async_callback(leadership.release)

            def channels() -> Mapping[str, ChannelConfig]:
                ruleset = rule_file.current
                return {n: c.config for n, c in ruleset.channels.items()}  # type: ignore[misc]

            worker = DeliveryWorker(
                store,
                notifiers,
                channels,
                clock=clock,
                rng=random.Random(),
                concurrency=settings.delivery_concurrency,
                per_host=settings.delivery_per_host,
                mask=mask.mask if mask is not None else None,
                max_attempts=settings.delivery_max_attempts,
                max_age=settings.delivery_max_age,
                lease=settings.delivery_lease,
                on_outcome=metrics.delivery,
            )
            pipeline = Pipeline(
                # /healthz judges each watched symbol's price age (a slow one can't hide).
                provider=QuoteWatch(provider, health.mark_prices, clock),
                store=store,
                data=MarketData(),
                states={},
                rules=lambda: rule_file.current,
                metrics=metrics,
                health=health,
                on_alerts=worker.wake,
                source=str(rule_file.path),
                cadence=Cadence.from_settings(settings),
                stages=parts.stages_for(settings, store),
                # EARNWATCH_CONFIRM=2 asks the providers built from the settings, or the
                # given chain (the demo of a scenario with a second provider's figures).
                second_opinion=second_opinion_of(provider),
            )
            await pipeline.resume()
            app = cls(
                settings=settings,
                clock=clock,
                rule_file=rule_file,
                metrics=metrics,
                health=health,
                provider=provider,
                notifiers=notifiers,
                heartbeat=heartbeat,
                store=store,
                leadership=leadership,
                worker=worker,
                pipeline=pipeline,
                exits=exits.pop_all(),
                until=until,
            )
        if provider_built:
            try:
                app.stream = app._build_stream()
            except BaseException:
                await app.aclose()
                raise
        return app

    def _build_stream(self) -> FinnhubStream | None:
        """The trade stream (None when EARNWATCH_STREAM is off): trades go to the
        pipeline, its state to /metrics and /healthz; it runs from `start_stream`."""
        if self.settings.stream_provider is None:
            return None  # off: the stream's module (and websockets) is never imported
        from service.providers.finnhub_stream import RERANK, StreamedSymbols, build_stream

        pipeline, clock = self.pipeline, self.clock

        async def on_trades(trades: Mapping[str, Trade]) -> None:
            prices = {s: (t.price, t.time) for s, t in trades.items()}
            await pipeline.apply_trades(prices, clock.now())

        def on_state(connected: bool) -> None:
            self.metrics.set_stream_connected(connected)
            self.health.set_stream(connected, clock.now())

        return build_stream(
            self.settings,
            # The most urgent symbols stream, re-ranked every RERANK as prices move.
            symbols=StreamedSymbols(
                lambda: pipeline.ranked_prices(clock.now()),
                self.settings.stream_symbols,
                lambda: (self.rules(), int(clock.now().timestamp() // RERANK)),
            ),
            on_trades=on_trades,
            leading=self.is_leading,
            on_state=on_state,
            on_connect=pipeline.quote_soon,  # the stream says nothing until the next trade
            on_trade=self.metrics.stream_trade,
        )

    def start_stream(self, stop: asyncio.Event) -> None:
        """Run the trade stream (if any) until `stop` is set or the App closes."""
        if self.stream is None or self._stream_task is not None:
            return
        task = asyncio.create_task(self.stream.run(stop))
        self._stream_task = task

        async def cancel() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self._exits.push_async_callback(cancel)

    async def stop_stream(self, grace: float = 2.0) -> None:
        """Wait up to `grace` for the stream to end by itself (its `stop` is set), then
        cut it short."""
        task = self._stream_task
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), grace)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def aclose(self) -> None:
        """Close every part, in the reverse order of building (idempotent)."""
        await self._exits.aclose()

    def rules(self) -> RuleSet:
        return self.rule_file.current

    async def start_http(self) -> WebServer | None:
        """`/healthz`, `/metrics` and the status page (`/`, `/api/status`) on EARNWATCH_HTTP
        (None when it is off), closed with the App. Raises ConfigError for a non-loopback
        address without EARNWATCH_HTTP_TOKEN, OSError when the address cannot be listened
        on."""
        if self.settings.http in ("", "off"):
            return None

        async def status() -> dict[str, Any]:
            # The snapshot's code (explanations, budgets, traces: ~15 ms of imports)
            # loads with the first status page or /api/status, not with the daemon.
            from service.status import read_status

            return await read_status(self)

        async def history(limit: int, rule: str | None, status: str | None) -> list[Any]:
            from service.commands import entry_json

            def read() -> list[Any]:
                entries = self.store.history(limit=limit, rule=rule, status=status)  # type: ignore[arg-type]
                return [entry_json(e) for e in entries]

            return await asyncio.to_thread(read)

        host, port = self.settings.http_host_port
        secret = self.settings.http_token
        token = secret.get_secret_value() if secret is not None else None
        refused = refusal(host, token)
        if refused is not None:
            raise ConfigError(refused)
        web = await start_web(
            host,
            port,
            lambda: self.health.check(self.clock.now()),
            self.metrics,
            status=status,
            history=history,
            token=token,
        )
        self._exits.push_async_callback(web.aclose)
        access = "token required" if token else "open: loopback, no token"
        log.info(
            "status page, health and metrics on http://%s (%s)", address(web.host, web.port), access
        )
        return web

    # --- leadership --------------------------------------------------------------------
    def is_leading(self) -> bool:
        """Only the leader polls and evaluates (always this process on SQLite)."""
        return bool(self._leading) and self.leadership.leading

    async def leader_step(self) -> bool:
        """One election step. Returns True when this replica just became leader (the
        caller runs the calendar cycle at once)."""
        leading = await self.leadership.step()
        if leading == self._leading:
            return False
        if leading:
            # The previous leader moved rule states and market data on: start from theirs.
            await self.pipeline.resume()
            self.worker.wake()  # the old leader may have died mid-send: claim now
            if not self.leadership.leading:
                return False
        self._leading = leading
        self.metrics.set_leader(leading)
        self.health.set_leading(leading, self.clock.now())
        return leading

    # --- the cycles the daemon schedules -----------------------------------------------
    async def calendar(self) -> None:
        if self.is_leading():
            await self.pipeline.calendar_cycle(self.clock.now())

    async def quotes(self, stop: asyncio.Event | None = None) -> None:
        if self.is_leading():
            await self.pipeline.quotes_cycle(self.clock.now, stop=stop)

    async def market(self) -> bool:
        """The market cycle (on a standby: storing what it fired while it led). Returns
        True once a replay is over: `until` reached and every alert delivered."""
        now = self.clock.now()
        if not self.is_leading():
            await self.pipeline.record_waiting(now)
            return False
        pending = await self.pipeline.market_cycle(now)
        return self.until is not None and now >= self.until and pending == 0

    async def once(self) -> None:
        """`earnwatch run --once`: one election step, one of each cycle, then every
        delivery due (with another replica leading, only the deliveries)."""
        await self.leader_step()
        await self.calendar()
        await self.quotes()
        await self.market()
        while await self.worker.run_once():
            pass

    # --- the rule file -----------------------------------------------------------------
    async def reload(self, *, force: bool = False) -> None:
        """Reload the rule file if it changed (always look with `force`). Reading,
        parsing, validating and compiling run in a thread; only recording the outcome and
        swapping the rule set in run on the loop. A refused or unreadable file keeps the
        previous rules running, and says so once per cause. After a file was read (taken
        or refused), the heap its load freed goes back to the system (`service/heap.py`)."""
        if await self._reload(force=force):
            await asyncio.to_thread(heap.trim)

    async def _reload(self, *, force: bool) -> bool:
        """`reload`; True when a new file was parsed (the previous rule set is then
        unreferenced once this returns)."""
        rule_file = self.rule_file
        found = await asyncio.to_thread(rule_file.inspect, force=force)
        was_failing = rule_file.failure
        old = rule_file.current
        rule_file.apply(found)
        if found.kind == "unreadable":
            if force or found.reason != was_failing:  # once per cause; retried every tick
                self.metrics.rule_reload_error()
                log.error(
                    "%s: cannot read the rule file: %s; the previous rules keep running "
                    "(tried again every %s)",
                    rule_file.path,
                    found.reason,
                    self.settings.rules_watch,
                )
            return False
        if was_failing is not None:
            log.info("%s: the rule file can be read again", rule_file.path)
        if found.kind == "unchanged":
            if force or was_failing is not None:
                log.info("rule file unchanged: %s", old.summary())
            return False
        if found.kind == "refused":
            assert isinstance(found.error, RuleFileError)
            self.metrics.rule_reload_error()
            for line in found.error.lines():
                log.error("%s", line)
            log.error(
                "rule file refused (%d problem(s)); the previous rules keep running",
                len(found.error.problems),
            )
            return True
        ruleset = rule_file.current
        self.metrics.set_rules_loaded(len(ruleset.rules))
        log.info("rules reloaded: %s", ruleset.summary())
        if ruleset.symbols - old.symbols:
            self.pipeline.quote_soon()
            await self.calendar()
        elif self.is_leading():
            await self.pipeline.evaluate(self.clock.now(), None)
        return True


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_error(settings: Settings, exc: OSError) -> str:
    """The one line for an EARNWATCH_HTTP address that cannot be listened on."""
    host, port = settings.http_host_port
    reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return f"EARNWATCH_HTTP: cannot listen on {address(host, port)}: {reason}"
