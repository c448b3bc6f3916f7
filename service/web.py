"""The daemon's HTTP side: `/healthz` and `/metrics`, on plain `asyncio.start_server`.

Promises: GET and HEAD on `/healthz` (200 `ok`, or 503 with the reason) and `/metrics`
(Prometheus text); 404 for other paths, 405 for other methods, 400 for a request that is
not HTTP/1.x; one request per connection, closed after the response; a slow or broken
client, a failing health callable or a failing render is answered or dropped and never
raises into the daemon. No framework, no thread.

`HealthState` is the pure part: the daemon tells it what happened, with `now`, and
`check(now)` says whether the process is healthy and, if not, why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Final

from service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.metrics import Metrics

log = logging.getLogger(__name__)

READ_TIMEOUT: Final = 5.0
MAX_REQUEST_LINE: Final = 8192
MAX_HEADER_LINES: Final = 100
MAX_REASON: Final = 300
TEXT: Final = "text/plain; charset=utf-8"

HealthCheck = Callable[[], tuple[bool, str]]


class HealthState:
    """What `/healthz` reports, from what the daemon tells it.

    Unhealthy when the scheduler is not running; when `max_failures` provider calls in a
    row failed; when the last success is older than `stale_after`; or, once `start_grace`
    has passed since `started_at`, when no provider call succeeded yet. The grace starts at
    the first `check()` when `started_at` is not given. A standby replica (`leading` False)
    makes no provider calls, so only its scheduler counts; `set_leading(True, now)` restarts
    the grace, so a new leader is not judged on the old leader's silence.

    A leader is also unhealthy while recording fails (`mark_recording_failure`, until
    `mark_recording_success`), and, with `evaluation_stale` set, when its last evaluation
    pass (`mark_evaluated`) is older than that.

    Freshness: once `watch_prices` names the symbols whose prices rules read, and how old a
    price may get (`prices_stale_after`), the process is unhealthy while any of them was not
    answered (`mark_prices`) within that window. Calls succeeding for some symbols are not
    enough: one stalled symbol's rules are as blind as if every call failed.
    """

    def __init__(
        self,
        stale_after: timedelta,
        *,
        started_at: datetime | None = None,
        start_grace: timedelta | None = None,
        max_failures: int = 3,
    ) -> None:
        self.stale_after = stale_after
        self.start_grace = stale_after if start_grace is None else start_grace
        self.max_failures = max_failures
        self.started_at = started_at
        self.scheduler_running = False
        self.leading = True
        self.last_success: datetime | None = None
        self.last_failure: datetime | None = None
        self.last_error: str | None = None
        self.consecutive_failures = 0
        self.recording_error: str | None = None  # set while the store refuses writes
        #: With a value, a leader whose last evaluation pass is older than this is
        #: unhealthy (a pass stuck or failing every time swallows every alert).
        self.evaluation_stale: timedelta | None = None
        self.last_evaluation: datetime | None = None
        self.prices_stale_after: timedelta | None = None
        self._prices_seen: dict[str, datetime] = {}

    def set_leading(self, leading: bool, now: datetime) -> None:
        """This replica became leader (polls from now on) or standby (polls nothing)."""
        if leading and not self.leading:
            self.started_at = now
            self.last_success = self.last_failure = self.last_error = None
            self.consecutive_failures = 0
            self._prices_seen = {}
        self.leading = leading

    def watch_prices(
        self, symbols: Iterable[str], stale_after: timedelta | None, now: datetime
    ) -> None:
        """The prices of `symbols` must be answered at least every `stale_after` (None: no
        check). A symbol newly watched gets a full window from `now`; so does every symbol
        when the window shrinks (at the market open, say), since the old pace was allowed."""
        shrinks = (
            stale_after is not None
            and self.prices_stale_after is not None
            and stale_after < self.prices_stale_after
        )
        seen = self._prices_seen
        self._prices_seen = {
            s: max(seen[s], now) if shrinks and s in seen else seen.get(s, now) for s in symbols
        }
        self.prices_stale_after = stale_after

    def mark_prices(self, now: datetime, symbols: Iterable[str]) -> None:
        """The provider answered the prices of `symbols` at `now`."""
        for symbol in symbols:
            if symbol in self._prices_seen:
                self._prices_seen[symbol] = max(now, self._prices_seen[symbol])

    def stale_prices(self, now: datetime) -> list[str]:
        """The watched symbols whose price was not answered within `prices_stale_after`."""
        window = self.prices_stale_after
        if window is None:
            return []
        return sorted(s for s, seen in self._prices_seen.items() if now - seen > window)

    def mark_provider_success(self, now: datetime) -> None:
        """A provider call succeeded at `now`."""
        self.last_success = now
        self.consecutive_failures = 0

    def mark_provider_failure(self, now: datetime, reason: str) -> None:
        """A provider call failed at `now`; `reason` is shown by `/healthz`, so it must be
        a message free of secrets (every `EarnwatchError` message is)."""
        self.last_failure = now
        self.last_error = " ".join(reason.split())[:MAX_REASON]
        self.consecutive_failures += 1

    def mark_recording_failure(self, now: datetime, reason: str) -> None:
        """Alerts and states could not be written at `now` (they wait in memory)."""
        self.recording_error = " ".join(reason.split())[:MAX_REASON] or "store error"

    def mark_recording_success(self, now: datetime) -> None:
        """Alerts and states were written at `now`."""
        self.recording_error = None

    def mark_evaluated(self, now: datetime) -> None:
        """An evaluation pass completed at `now`."""
        self.last_evaluation = now

    def _evaluation_problem(self, now: datetime) -> str | None:
        """Why recording or evaluation is unhealthy, or None. Apart from the provider
        checks below so that each can change without touching the other."""
        if self.recording_error is not None:
            return f"recording failed: {self.recording_error}"
        if self.evaluation_stale is None:
            return None
        marks = [m for m in (self.last_evaluation, self.started_at) if m is not None]
        if marks and now - max(marks) > self.evaluation_stale:  # a new leader gets its grace
            return f"no evaluation pass in the last {self.evaluation_stale.total_seconds():g} s"
        return None

    def check(self, now: datetime) -> tuple[bool, str]:
        """(healthy, reason) at `now`; when healthy the reason is "ok", "starting" or
        "standby"."""
        if self.started_at is None:
            self.started_at = now
        if not self.scheduler_running:
            return False, "scheduler not running"
        if not self.leading:
            return True, "standby"
        problem = self._evaluation_problem(now)
        if problem is not None:
            return False, problem
        error = self.last_error or "no provider call since"
        if self.max_failures and self.consecutive_failures >= self.max_failures:
            return False, f"{self.consecutive_failures} provider calls failed in a row: {error}"
        if stale := self.stale_prices(now):
            assert self.prices_stale_after is not None
            shown = ", ".join(stale[:5]) + (", ..." if len(stale) > 5 else "")
            window = self.prices_stale_after.total_seconds()
            why = f"; last provider error: {self.last_error}" if self.last_error else ""
            return False, f"prices of {len(stale)} symbol(s) older than {window:g} s: {shown}{why}"
        if self.last_success is None:
            if now - self.started_at < self.start_grace:
                return True, "starting"
            if self.last_failure is None:
                return False, "starting: no provider call yet"
            return False, f"{self._no_success_since()}: {error}"
        if now - self.last_success > self.stale_after:
            return False, f"{self._no_success_since()}: {error}"
        return True, "ok"

    def _no_success_since(self) -> str:
        return f"no successful provider call in the last {self.stale_after.total_seconds():g} s"


class _BadRequest(Exception):
    """The bytes received are not an HTTP/1.x request we can answer."""


class WebServer:
    """A running `/healthz` + `/metrics` server; `aclose()` stops it and drops clients."""

    def __init__(self, health: HealthCheck, metrics: Metrics) -> None:
        self._health = health
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        """The address actually bound."""
        return str(self._sockname()[0])

    @property
    def port(self) -> int:
        """The port actually bound (useful after asking for port 0)."""
        port = self._sockname()[1]
        assert isinstance(port, int)
        return port

    def _sockname(self) -> tuple[object, ...]:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the web server is not listening")
        name: tuple[object, ...] = tuple(self._server.sockets[0].getsockname())
        return name

    async def _start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_LINE)

    async def aclose(self) -> None:
        """Stop listening, end open connections, and wait until done. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> WebServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            try:
                method, path = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
            except _BadRequest:
                status, ctype, body, method = HTTPStatus.BAD_REQUEST, TEXT, b"bad request\n", ""
            else:
                status, ctype, body = self._route(method, path)
            writer.write(_response(status, ctype, body, head=method == "HEAD"))
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except (TimeoutError, ConnectionError, OSError):
            pass  # a client that is slow or gone gets no answer
        except Exception:
            log.exception("web: unexpected error while answering a request")
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._clients.discard(task)

    def _route(self, method: str, path: str) -> tuple[HTTPStatus, str, bytes]:
        if path not in ("/healthz", "/metrics"):
            return HTTPStatus.NOT_FOUND, TEXT, b"not found\n"
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, TEXT, b"method not allowed\n"
        if path == "/metrics":
            try:
                return HTTPStatus.OK, METRICS_CONTENT_TYPE, self._metrics.render()
            except Exception:
                log.exception("web: rendering /metrics failed")
                return HTTPStatus.INTERNAL_SERVER_ERROR, TEXT, b"metrics unavailable\n"
        try:
            healthy, reason = self._health()
        except Exception:
            log.exception("web: the health check raised")
            healthy, reason = False, "health check failed"
        if healthy:
            return HTTPStatus.OK, TEXT, b"ok\n"
        text = " ".join(reason.split())[:MAX_REASON] or "unhealthy"
        return HTTPStatus.SERVICE_UNAVAILABLE, TEXT, (text + "\n").encode("utf-8")


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """(method, path without query) of one request; headers are read and ignored."""
    try:
        line = await reader.readline()
        parts = line.decode("ascii").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest
        method, target = parts[0], parts[1]
        if not method.isalpha() or not method.isupper() or not target.startswith("/"):
            raise _BadRequest
        for _ in range(MAX_HEADER_LINES):
            header = await reader.readline()
            if header in (b"\r\n", b"\n"):
                return method, target.split("?", 1)[0].split("#", 1)[0]
            if not header.endswith(b"\n"):
                raise _BadRequest  # the client closed mid-request
    except (UnicodeDecodeError, ValueError, asyncio.LimitOverrunError) as exc:
        raise _BadRequest from exc
    raise _BadRequest  # too many header lines


def _response(status: HTTPStatus, content_type: str, body: bytes, *, head: bool) -> bytes:
    headers = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n"
    )
    if status is HTTPStatus.METHOD_NOT_ALLOWED:
        headers += "Allow: GET, HEAD\r\n"
    return (headers + "\r\n").encode("ascii") + (b"" if head else body)


async def start_web(host: str, port: int, health: HealthCheck, metrics: Metrics) -> WebServer:
    """Listen on `host:port` (port 0 picks a free one; see `WebServer.port`) and answer in
    the background. Raises OSError only when the address cannot be bound."""
    server = WebServer(health, metrics)
    await server._start(host, port)
    log.info("web: listening on %s:%d (/healthz, /metrics)", server.host, server.port)
    return server
