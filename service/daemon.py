"""The daemon: the only module that imports APScheduler. It wires the parts, owns the
clock, and runs a few fixed jobs that ask pure functions what is due:

- `calendar`: every watched symbol's calendar (yesterday to 90 days out) and price
  targets, at start and every EARNWATCH_CALENDAR_REFRESH, then a full evaluation;
- `market`: every second, quotes when due (EARNWATCH_PRICE_POLL while NYSE is open,
  EARNWATCH_OFF_HOURS_POLL otherwise), the calendar entry of every symbol inside its report
  window (EARNWATCH_EARNINGS_POLL), then evaluation of what changed;
- `rules`: the rule file, reloaded when it changes (and on SIGHUP). Reading, parsing,
  validating and compiling it run in a thread, never on the loop; the new rule set is
  swapped in on the loop. Reloads run one at a time, and requests made while one runs
  (a burst of SIGHUPs, the watch tick) fold into one more (`service/coalesce.py`).

Signal handlers are installed before anything else in `run()` and kept until the process
exits (`service/signals.py`): SIGHUP during the start is a reload once rules are loaded,
and a second SIGTERM during the shutdown only cuts the delivery grace short.

Deliveries run in their own task, woken as soon as alerts are stored. Jobs live in
memory and are rebuilt at each start; everything that must survive lives in the store.
Shutdown is pause -> drain -> shutdown, because APScheduler 3's asyncio executor cancels
running jobs on `shutdown()`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from service.clock import Clock, SystemClock
from service.coalesce import Coalescer
from service.config import Settings, env_file_warning
from service.delivery import DeliveryWorker
from service.errors import ConfigError, EarnwatchError, RuleFileError, StoreError
from service.heartbeat import Heartbeat, build_heartbeat
from service.hours import is_market_open
from service.logs import SecretMask
from service.marketdata import MarketData
from service.metrics import JobEvent as JobEventKind
from service.metrics import Metrics
from service.notify import CHANNEL_CONFIGS, build_notifiers
from service.notify.base import ChannelConfig, Notifier
from service.pipeline import QUOTE_VARS, Pipeline, symbols_needing
from service.providers import build_providers, prices_stale_after
from service.providers.base import Provider
from service.providers.watch import QuoteWatch
from service.rulefile import RuleFile
from service.rules import RuleSet
from service.schedule import is_due, quote_interval
from service.signals import SignalHandlers
from service.store import Store, open_store
from service.store.leader import Leader, leadership_for
from service.targets import channel_check
from service.web import HealthState, WebServer, start_web

log = logging.getLogger(__name__)

MARKET_TICK = 1.0  # seconds between `market` job runs; what is due is decided inside
#: With no new data, rules that move with the clock alone (hours_to_earnings, a running
#: `for`) are evaluated this often.
TIME_EVALUATION = timedelta(seconds=10)
#: On SIGTERM, polls get this long to end by themselves before they are cut short (a
#: poll holds no half-written state); deliveries get EARNWATCH_SHUTDOWN_GRACE.
POLL_GRACE = 1.0
#: A leader with no evaluation pass for this long is unhealthy (a pass runs every
#: TIME_EVALUATION; this leaves room for slow provider calls before it).
EVALUATION_STALE = timedelta(minutes=15)


@dataclass
class _Timers:
    last_quotes: datetime | None = None
    last_evaluation: datetime | None = None


class Daemon:
    """One Earnwatch process: `run()` until SIGTERM/SIGINT, or one cycle with `once`."""

    def __init__(
        self,
        settings: Settings,
        *,
        rules_path: Path,
        clock: Clock | None = None,
        provider: Provider | None = None,
        env_file: str | Path | None = ".env",
        mask: SecretMask | None = None,
        until: datetime | None = None,
        tick: float = MARKET_TICK,
        owns_process: bool = False,
    ) -> None:
        """`owns_process`: the caller exits when `run()` returns (the `run` command), so the
        signal handlers stay until then; otherwise `run()` puts the previous ones back."""
        self.settings = settings
        self.tick = tick
        self.tick_quotes_inline = False  # --once polls quotes inside the market step
        self.clock: Clock = clock or SystemClock()
        self.rule_file = RuleFile(
            rules_path,
            env_file=env_file,
            channel_configs=CHANNEL_CONFIGS,
            channel_check=channel_check(settings),
            mask=mask,
            max_bytes=settings.rules_max_bytes,
        )
        self.env_file = env_file
        self.owns_process = owns_process
        self.signals = SignalHandlers(on_stop=self._stop_signal, on_reload=self.request_reload)
        self.reloads = Coalescer(self._reload)
        self._hurry = asyncio.Event()  # a second SIGTERM: the shutdown grace is cut short
        self._provider = provider
        self.until = until
        self.metrics = Metrics()
        stale = max(settings.off_hours_poll, settings.calendar_refresh / 6) * 3
        self.health = HealthState(stale_after=stale, start_grace=timedelta(minutes=2))
        self.health.evaluation_stale = EVALUATION_STALE
        self.heartbeat: Heartbeat | None = None
        self.stopping = asyncio.Event()
        self.timers = _Timers()
        self.store: Store | None = None
        self.pipeline: Pipeline | None = None
        self.worker: DeliveryWorker | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self.provider: Provider | None = None
        self.notifiers: dict[str, Notifier] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self.leadership: Leader | None = None
        self._leading: bool | None = None  # None before the first step: the first result applies

    # --- wiring --------------------------------------------------------------------------
    def rules(self) -> RuleSet:
        assert self.rule_file.ruleset is not None
        return self.rule_file.ruleset

    def channel_configs(self) -> Mapping[str, ChannelConfig]:
        return {n: c.config for n, c in self.rules().channels.items()}  # type: ignore[misc]

    async def _open(self) -> None:
        """Everything that can refuse a bad setting first, then the database."""
        ruleset = await asyncio.to_thread(self.rule_file.load)
        self.metrics.set_rules_loaded(len(ruleset.rules))
        log.info("rules %s: %s", self.rule_file.path, ruleset.summary())
        self.provider = provider = self._provider or build_providers(
            self.settings, clock=self.clock
        )
        # /healthz judges each watched symbol's price age (a slow symbol can't hide).
        watched = QuoteWatch(provider, self.health.mark_prices, self.clock)
        self.notifiers = notifiers = build_notifiers(self.settings)
        self.heartbeat = build_heartbeat(
            self.settings, lambda: self.health.check(self.clock.now()), self.metrics
        )
        self.leadership = leadership_for(self.settings.database_url, self.settings.failover)
        self.store = store = await asyncio.to_thread(
            open_store, self.settings.database_url, daemon=True, failover=self.settings.failover
        )
        states = await asyncio.to_thread(store.load_states)
        saved = await asyncio.to_thread(store.load_market_data, "market")
        data = MarketData.from_json(saved.data_json) if saved is not None else MarketData()
        self.worker = DeliveryWorker(
            store,
            notifiers,
            self.channel_configs,
            clock=self.clock,
            rng=random.Random(),
            concurrency=self.settings.delivery_concurrency,
            per_host=self.settings.delivery_per_host,
            mask=self.rule_file.mask.mask if self.rule_file.mask is not None else None,
            max_attempts=self.settings.delivery_max_attempts,
            max_age=self.settings.delivery_max_age,
            lease=self.settings.delivery_lease,
            on_outcome=self.metrics.delivery,
        )
        self.pipeline = Pipeline(
            provider=watched,
            store=store,
            data=data,
            states=states,
            rules=self.rules,
            metrics=self.metrics,
            health=self.health,
            on_alerts=self.worker.wake,
            source=str(self.rule_file.path),
        )

    # --- jobs ----------------------------------------------------------------------------
    def _job(self, name: str, work: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Wrap a job: never raises into the scheduler, and registers itself for draining."""

        async def run() -> None:
            if self.stopping.is_set():
                return
            task = asyncio.current_task()
            assert task is not None
            self._inflight.add(task)
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
                self._inflight.discard(task)

        return run

    def is_leading(self) -> bool:
        """Only the leader polls and evaluates (always this process on SQLite)."""
        return bool(self._leading) and self.leadership is not None and self.leadership.leading

    async def leader_job(self) -> None:
        assert self.leadership is not None and self.store is not None and self.pipeline is not None
        leading = await self.leadership.step()
        if leading == self._leading:
            return
        if leading:
            # The previous leader moved rule states and market data on: start from theirs.
            states = await asyncio.to_thread(self.store.load_states)
            saved = await asyncio.to_thread(self.store.load_market_data, "market")
            self.pipeline.states = states
            self.pipeline.data = MarketData.from_json(saved.data_json) if saved else MarketData()
            self.pipeline.earnings_polled.clear()
            self.timers.last_quotes = None
            if self.worker is not None:  # the old leader may have died mid-send: claim now
                self.worker.wake()
            if not self.leadership.leading:
                return
        self._leading = leading
        self.metrics.set_leader(leading)
        self.health.set_leading(leading, self.clock.now())
        job = self._scheduler.get_job("calendar") if self._scheduler is not None else None
        if leading and job is not None:
            job.modify(next_run_time=datetime.now().astimezone())

    async def calendar_job(self) -> None:
        assert self.pipeline is not None
        if not self.is_leading():
            return
        now = self.clock.now()
        await self.pipeline.refresh_calendar(now)
        await self.pipeline.refresh_targets(now)
        await self.pipeline.evaluate(now, None)  # which report a rule sees moves by the day
        await self.pipeline.save_data(now)

    async def quotes_job(self) -> None:
        """Quotes when due. Its own job: a provider without batch quotes needs minutes for
        hundreds of symbols, and the report-window polls must not wait behind it."""
        assert self.pipeline is not None
        if not self.is_leading():
            return
        now = self.clock.now()
        settings = self.settings
        interval = quote_interval(is_market_open(now), settings.price_poll, settings.off_hours_poll)
        symbols = symbols_needing(self.rules(), QUOTE_VARS)
        stale = prices_stale_after(
            settings.provider_names, len(symbols), interval, settings.http_timeout
        )
        self.health.watch_prices(symbols, stale, now)
        if not is_due(self.timers.last_quotes, now, interval):
            return
        self.timers.last_quotes = now
        if await self.pipeline.poll_quotes(self.clock.now, stop=self.stopping):
            await self.pipeline.save_data(self.clock.now())

    async def market_job(self) -> None:
        """The report-window calendar polls, then an evaluation of what changed and of
        the rules that move with the clock alone."""
        assert self.pipeline is not None
        if not self.is_leading():
            await self.pipeline.record_waiting(self.clock.now())  # fired while it led
            return
        now = self.clock.now()
        if self.tick_quotes_inline:
            await self.quotes_job()
        changed = await self.pipeline.poll_earnings(now, self.settings.earnings_poll)
        if changed or is_due(self.timers.last_evaluation, now, TIME_EVALUATION):
            self.timers.last_evaluation = now
            await self.pipeline.evaluate(now, changed)
        pending = await asyncio.to_thread(self.pipeline.store.pending_count)
        self.metrics.set_outbox_pending(pending)
        if changed:
            await self.pipeline.save_data(now)
        if self.until is not None and now >= self.until and pending == 0:
            self.stopping.set()  # a replay ends once its alerts are out

    def request_reload(self) -> None:
        """SIGHUP: reload the rule file (and `.env`) as soon as possible, even unchanged."""
        log.debug("SIGHUP: rule file reload requested")
        self.reloads.request(force=True)

    async def _watch_rules(self) -> None:
        """The watch tick. A coroutine, so that APScheduler runs it on the loop (a plain
        function would run in a thread, and asyncio's Event is not thread-safe)."""
        self.reloads.request()

    async def _reload(self, force: bool) -> None:
        await self._job("rules", lambda: self.rules_job(force=force))()

    async def rules_job(self, *, force: bool = False) -> None:
        """Reload the rule file if it changed (always look with `force`). The work runs in
        a thread; only recording the outcome and swapping the rule set run on the loop."""
        rule_file = self.rule_file
        found = await asyncio.to_thread(rule_file.inspect, force=force)
        was_failing = rule_file.failure
        old = self.rules()
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
            return
        if was_failing is not None:
            log.info("%s: the rule file can be read again", rule_file.path)
        if found.kind == "unchanged":
            if force or was_failing is not None:
                log.info("rule file unchanged: %s", old.summary())
            return
        if found.kind == "refused":
            assert isinstance(found.error, RuleFileError)
            self.metrics.rule_reload_error()
            for line in found.error.lines():
                log.error("%s", line)
            log.error(
                "rule file refused (%d problem(s)); the previous rules keep running",
                len(found.error.problems),
            )
            return
        ruleset = self.rules()
        self.metrics.set_rules_loaded(len(ruleset.rules))
        log.info("rules reloaded: %s", ruleset.summary())
        if ruleset.symbols - old.symbols:
            self.timers.last_quotes = None
            await self.calendar_job()
        elif self.is_leading():
            assert self.pipeline is not None
            await self.pipeline.evaluate(self.clock.now(), None)

    # --- running -------------------------------------------------------------------------
    async def run(self, *, once: bool = False) -> int:
        # First of all, before anything slow: from here on no SIGHUP or SIGTERM ends the
        # process by its default action.
        self.signals.install(asyncio.get_running_loop())
        try:
            return await self._run(once=once)
        finally:
            if self.owns_process:
                self.signals.detach()  # kept until the process exits, ignoring what comes
            else:
                self.signals.restore()

    def _stop_signal(self, signum: int) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
        elif not self._hurry.is_set():
            log.warning("%s again: cutting the shutdown grace short", signal.Signals(signum).name)
            self._hurry.set()

    async def _run(self, *, once: bool) -> int:
        warning = env_file_warning(self.env_file)
        if warning is not None:
            log.warning("%s", warning)
        try:
            await self._open()
        except RuleFileError as exc:
            for line in exc.lines():
                log.error("%s", line)
            log.error("cannot start: the rule file has %d problem(s)", len(exc.problems))
            return 2
        except OSError as exc:
            log.error("cannot start: %s: %s", self.rule_file.path, exc.strerror)
            return 2
        except (StoreError, ConfigError) as exc:
            log.error("cannot start: %s", exc)
            await self._close()
            return 2
        web: WebServer | None = None
        try:
            if once:
                await self._once()
                return 0
            if self.settings.http not in ("", "off"):
                host, port = self.settings.http_host_port
                try:
                    web = await start_web(
                        host, port, lambda: self.health.check(self.clock.now()), self.metrics
                    )
                except OSError as exc:
                    log.error(
                        "cannot start: EARNWATCH_HTTP: cannot listen on %s: %s",
                        _address(host, port),
                        os.strerror(exc.errno) if exc.errno else type(exc).__name__,
                    )
                    return 2
                log.info("health and metrics on http://%s", _address(web.host, web.port))
            await self._serve()
            return 0
        finally:
            if web is not None:
                await web.aclose()
            await self._close()

    async def _close(self) -> None:
        """Close whatever was opened (idempotent), also after a start that failed."""
        if self.leadership is not None:
            await self.leadership.release()
        if self.provider is not None:
            await self.provider.aclose()
            self.provider = None
        for notifier in self.notifiers.values():
            await notifier.aclose()
        self.notifiers = {}
        if self.heartbeat is not None:
            await self.heartbeat.aclose()
            self.heartbeat = None
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None

    def _job_event(self, event: JobEvent) -> None:
        kinds: dict[int, JobEventKind] = {
            EVENT_JOB_MAX_INSTANCES: "max_instances",
            EVENT_JOB_MISSED: "missed",
        }
        self.metrics.job_event(event.job_id, kinds.get(event.code, "error"))

    async def _once(self) -> None:
        assert self.worker is not None and self.pipeline is not None
        await self.leader_job()  # with another replica leading, --once only delivers
        await self.calendar_job()
        self.tick_quotes_inline = True
        await self.market_job()
        while await self.worker.run_once():
            pass

    async def _serve(self) -> None:
        assert self.worker is not None
        # APScheduler logs every run at INFO and every skipped run (a job still busy) at
        # WARNING; both are counted in /metrics instead (earnwatch_job_events_total).
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        scheduler = AsyncIOScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )
        self._scheduler = scheduler
        assert self.leadership is not None
        await self._job("leader", self.leader_job)()  # elect before the first poll
        start = datetime.now().astimezone()
        scheduler.add_job(
            self._job("leader", self.leader_job),
            "interval",
            seconds=self.leadership.step_interval,
            id="leader",
            misfire_grace_time=None,
        )
        scheduler.add_job(
            self._job("calendar", self.calendar_job),
            "interval",
            seconds=self.settings.calendar_refresh.total_seconds(),
            next_run_time=start,
            id="calendar",
        )
        scheduler.add_job(
            self._job("quotes", self.quotes_job),
            "interval",
            seconds=self.tick,
            next_run_time=start + timedelta(seconds=0.3),
            id="quotes",
        )
        scheduler.add_job(
            self._job("market", self.market_job),
            "interval",
            seconds=self.tick,
            next_run_time=start + timedelta(seconds=0.5),
            id="market",
        )
        scheduler.add_job(
            self._watch_rules,  # the reload itself runs in `reloads`, one at a time
            "interval",
            seconds=self.settings.rules_watch.total_seconds(),
            id="rules",
        )
        if self.heartbeat is not None:
            scheduler.add_job(
                self._job("heartbeat", self.heartbeat.tick),
                "interval",
                seconds=self.heartbeat.interval.total_seconds(),
                id="heartbeat",
            )
        scheduler.add_listener(
            self._job_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR
        )
        worker_stop = asyncio.Event()
        worker_task = asyncio.create_task(self.worker.run(worker_stop))
        reload_task = asyncio.create_task(self.reloads.run(self.stopping))  # SIGHUPs so far
        scheduler.start()
        self.health.scheduler_running = True
        log.info(
            "earnwatch running: %s; %s",
            self.rules().summary(),
            "leading" if self.is_leading() else "standby (another replica leads)",
        )
        await self.stopping.wait()
        log.info("stopping: no new polls; letting deliveries in flight finish")
        scheduler.pause()
        self.health.scheduler_running = False
        reload_task.cancel()  # a reload in flight is one of `_inflight`, drained below
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=POLL_GRACE)
        for task in set(self._inflight):  # polls still running past the grace: cut short
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self.leadership.release()  # a standby takes over at once
        worker_stop.set()
        hurry = asyncio.create_task(self._hurry.wait())
        await asyncio.wait(
            {worker_task, hurry},
            timeout=self.settings.shutdown_grace.total_seconds(),
            return_when=asyncio.FIRST_COMPLETED,
        )
        hurry.cancel()
        if not worker_task.done():
            log.warning(
                "deliveries still in flight after %s; they will be retried at the next start",
                "a second signal" if self._hurry.is_set() else self.settings.shutdown_grace,
            )
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        await asyncio.gather(reload_task, return_exceptions=True)
        scheduler.shutdown(wait=False)
        log.info("stopped")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
