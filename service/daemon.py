"""The daemon: the only module that imports APScheduler. It runs an `App` (service/app.py
builds every part) on fixed jobs, handles the signals, and shuts down in order. Jobs:
`leader` (an election step; a new leader runs `calendar` at once), `calendar` (every
EARNWATCH_CALENDAR_REFRESH), `quotes` and `market` (every second: what is due the pipeline
decides), `rules` (the watch tick; reloads run one at a time and requests made meanwhile
fold into one, `service/coalesce.py`) and `heartbeat` (when EARNWATCH_HEARTBEAT_URL is set).

Signal handlers are installed before anything else in `run()` and kept until the process
exits (`service/signals.py`): SIGHUP during the start is a reload once rules are loaded,
and a second SIGTERM during the shutdown only cuts the delivery grace short. Jobs live in
memory and are rebuilt at each start; everything that must survive lives in the store.
Shutdown is pause -> drain -> shutdown, because APScheduler 3's asyncio executor cancels
running jobs on `shutdown()`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from service import heap
from service.app import App, listen_error
from service.clock import Clock
from service.coalesce import Coalescer
from service.config import Settings, env_file_warning
from service.errors import ConfigError, RuleFileError, StoreError
from service.jobs import Jobs
from service.logs import SecretMask
from service.metrics import JobEvent as JobEventKind
from service.providers.base import Provider
from service.signals import SignalHandlers

log = logging.getLogger(__name__)

MARKET_TICK = 1.0  # seconds between `market` job runs; what is due is decided inside
#: On SIGTERM, polls get this long to end by themselves before they are cut short (a
#: poll holds no half-written state); deliveries get EARNWATCH_SHUTDOWN_GRACE.
POLL_GRACE = 1.0


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
        self.owns_process = owns_process
        self._open = functools.partial(
            App.open,
            settings,
            rules_path=rules_path,
            clock=clock,
            provider=provider,
            env_file=env_file,
            mask=mask,
            until=until,
        )
        self._rules_path = rules_path
        self._env_file = env_file
        self._app: App | None = None
        self.signals = SignalHandlers(on_stop=self._stop_signal, on_reload=self.request_reload)
        self.reloads = Coalescer(self._reload)
        self.stopping = asyncio.Event()
        self.started = asyncio.Event()  # set once the App is built and the jobs run
        self._hurry = asyncio.Event()  # a second SIGTERM: the shutdown grace is cut short
        self.jobs = Jobs(self.stopping)
        self._scheduler: AsyncIOScheduler | None = None

    @property
    def app(self) -> App:
        """The running App (from `started` on, until `run()` returns)."""
        if self._app is None:
            raise RuntimeError("the daemon is not running")
        return self._app

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

    async def _run(self, *, once: bool) -> int:
        warning = env_file_warning(self._env_file)
        if warning is not None:
            log.warning("%s", warning)
        try:
            app = await self._open()
        except RuleFileError as exc:
            for line in exc.lines():
                log.error("%s", line)
            log.error("cannot start: the rule file has %d problem(s)", len(exc.problems))
            return 2
        except OSError as exc:
            log.error("cannot start: %s: %s", self._rules_path, exc.strerror)
            return 2
        except (StoreError, ConfigError) as exc:
            log.error("cannot start: %s", exc)
            return 2
        self._app = app
        # The rule file's load freed far more than the rule set keeps: give it back.
        await asyncio.to_thread(heap.trim)
        try:
            if once:
                await app.once()
                return 0
            try:
                await app.start_http()
            except OSError as exc:
                log.error("cannot start: %s", listen_error(self.settings, exc))
                return 2
            except ConfigError as exc:  # a non-loopback EARNWATCH_HTTP without its token
                log.error("cannot start: %s", exc)
                return 2
            await self._serve(app)
            return 0
        finally:
            await app.aclose()
            self._app = None

    def _stop_signal(self, signum: int) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
        elif not self._hurry.is_set():
            log.warning("%s again: cutting the shutdown grace short", signal.Signals(signum).name)
            self._hurry.set()

    def request_reload(self) -> None:
        """SIGHUP: reload the rule file (and `.env`) as soon as possible, even unchanged."""
        log.debug("SIGHUP: rule file reload requested")
        self.reloads.request(force=True)

    # --- jobs ----------------------------------------------------------------------------
    async def _leader(self) -> None:
        if await self.app.leader_step() and self._scheduler is not None:
            job = self._scheduler.get_job("calendar")
            if job is not None:  # a new leader polls the calendar now
                job.modify(next_run_time=datetime.now().astimezone())

    async def _market(self) -> None:
        if await self.app.market():
            self.stopping.set()  # a replay ends once its alerts are out

    async def _calendar(self) -> None:
        """The calendar job. A cycle parses every report window's calendar (the first one,
        at the start, is the start's largest piece of work after the rule file): what
        that parsing freed goes back to the system (`service/heap.py`)."""
        await self.app.calendar()
        await asyncio.to_thread(heap.trim)

    async def _quotes(self) -> None:
        await self.app.quotes(self.stopping)

    async def _watch_rules(self) -> None:
        """The watch tick. A coroutine, so that APScheduler runs it on the loop (a plain
        function would run in a thread, and asyncio's Event is not thread-safe)."""
        self.reloads.request()

    async def _reload(self, force: bool) -> None:
        await self.jobs.wrap("rules", lambda: self.app.reload(force=force))()

    def _job_event(self, event: JobEvent) -> None:
        kinds: dict[int, JobEventKind] = {
            EVENT_JOB_MAX_INSTANCES: "max_instances",
            EVENT_JOB_MISSED: "missed",
        }
        self.app.metrics.job_event(event.job_id, kinds.get(event.code, "error"))

    def _schedule(self, app: App) -> AsyncIOScheduler:
        # APScheduler logs every run at INFO and every skipped run (a job still busy) at
        # WARNING; both are counted in /metrics instead (earnwatch_job_events_total).
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        scheduler = AsyncIOScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )
        start = datetime.now().astimezone()

        def every(
            name: str, seconds: float, work: Callable[[], Awaitable[None]], **kw: object
        ) -> None:
            scheduler.add_job(
                self.jobs.wrap(name, work), "interval", seconds=seconds, id=name, **kw
            )

        every("leader", app.leadership.step_interval, self._leader, misfire_grace_time=None)
        every(
            "calendar",
            self.settings.calendar_refresh.total_seconds(),
            self._calendar,
            next_run_time=start,
        )
        every("quotes", self.tick, self._quotes, next_run_time=start + timedelta(seconds=0.3))
        every("market", self.tick, self._market, next_run_time=start + timedelta(seconds=0.5))
        scheduler.add_job(  # the reload itself runs in `reloads`, one at a time
            self._watch_rules,
            "interval",
            seconds=self.settings.rules_watch.total_seconds(),
            id="rules",
        )
        if app.heartbeat is not None:
            every("heartbeat", app.heartbeat.interval.total_seconds(), app.heartbeat.tick)
        scheduler.add_listener(
            self._job_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR
        )
        return scheduler

    async def _serve(self, app: App) -> None:
        await self.jobs.wrap("leader", self._leader)()  # elect before the first poll
        scheduler = self._scheduler = self._schedule(app)
        worker_stop = asyncio.Event()
        worker_task = asyncio.create_task(app.worker.run(worker_stop))
        reload_task = asyncio.create_task(self.reloads.run(self.stopping))  # SIGHUPs so far
        app.start_stream(self.stopping)  # the trade stream, if any (only the leader's runs)
        scheduler.start()
        app.health.scheduler_running = True
        self.started.set()
        log.info(
            "earnwatch running: %s; %s",
            app.rules().summary(),
            "leading" if app.is_leading() else "standby (another replica leads)",
        )
        await self.stopping.wait()
        log.info("stopping: no new polls; letting deliveries in flight finish")
        scheduler.pause()
        app.health.scheduler_running = False
        reload_task.cancel()  # a reload in flight is one of `_inflight`, drained below
        await app.stop_stream(POLL_GRACE)  # no trade starts a pass from here on
        await self.jobs.drain(POLL_GRACE)
        await app.leadership.release()  # a standby takes over at once
        worker_stop.set()
        await self._finish_deliveries(worker_task)
        await asyncio.gather(reload_task, return_exceptions=True)
        scheduler.shutdown(wait=False)
        log.info("stopped")

    async def _finish_deliveries(self, worker_task: asyncio.Task[None]) -> None:
        """Give the sends in flight EARNWATCH_SHUTDOWN_GRACE (or until a second signal)."""
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
