"""The web stack behind `service/web.py`: a Starlette app served by uvicorn as a task of
the daemon's own asyncio loop. Imported only by `web.start_web` (never by the CLI).

Why these and how they are bent to the promises of `web.py`:
- uvicorn's server runs without its signal handlers (the daemon owns SIGTERM/SIGHUP)
  and without its logging setup or access log (a `/login?token=` must never be logged);
  the socket is bound here, so a taken port raises OSError instead of uvicorn's exit.
- its h11 protocol is extended only to drop a client that sends no complete request
  within `web.READ_TIMEOUT` (uvicorn times out idle keep-alive connections only) and to
  answer 400 to a request cut short by the client's EOF.
- every response says `Connection: close` and `Cache-Control: no-store`; a request
  target not starting with `/` or longer than `web.MAX_REQUEST_LINE` is a 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from service import web
from service.health import MAX_REASON
from service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.metrics import Metrics
from service.store.statuses import STATUSES

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger("service.web")

TEXT: Final = "text/plain; charset=utf-8"
COOKIE: Final = "earnwatch_session"
COOKIE_AGE: Final = 30 * 86400
ALLOW: Final = "GET, HEAD"
#: The page loads nothing from anywhere: no script, no font, no image but inline ones.
HTML_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
REFRESH_SECONDS: Final = 15
#: `/api/history`: `limit` by default and at most (the CLI's `history --limit` default: 50).
HISTORY_LIMIT: Final = 50
HISTORY_MAX: Final = 1000


def _text(status: int, body: str, headers: Mapping[str, str] | None = None) -> Response:
    return PlainTextResponse(body, status_code=status, media_type=TEXT, headers=headers)


def session_value(token: str) -> str:
    """The session cookie's value: derived from the token (a new token logs every browser
    out), and not the token itself."""
    return hmac.new(token.encode(), b"earnwatch status page session", hashlib.sha256).hexdigest()


def _jsonable(value: Any) -> Any:
    """NaN and infinities as null (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _when(value: str | None) -> str:
    """An ISO time from the snapshot as the page shows it: `2026-02-04 16:34Z`."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
    except ValueError:
        return value


def _templates() -> jinja2.Environment:
    """The page's templates. Built with the first page or login form served: Jinja2 (19
    modules, ~1.7 MiB) is not loaded by a daemon whose page nobody opens."""
    import jinja2

    folder = resources.files("service") / "data" / "web"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,  # every value on the page comes from rule files and providers
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


class Routes:
    """The endpoints, with what they need."""

    def __init__(
        self,
        health: web.HealthCheck,
        metrics: Metrics,
        status: web.StatusSource | None,
        token: str | None,
        history: web.HistorySource | None = None,
    ) -> None:
        self._health = health
        self._metrics = metrics
        self._status = status
        self._history = history
        self._token = token.encode() if token else None
        self._session = session_value(token).encode() if token else None
        self._pages = status is not None  # the HTML page and the login form are served
        self._environment: jinja2.Environment | None = None
        self._building = asyncio.Lock()

    def _templates(self) -> jinja2.Environment:
        if self._environment is None:
            self._environment = _templates()
        return self._environment

    # --- access ------------------------------------------------------------------------
    def _authorized(self, request: Request, *, cookie: bool = True) -> bool:
        if self._token is None:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = value.strip().encode()
        if scheme.lower() == "bearer" and hmac.compare_digest(given, self._token):
            return True
        session = request.cookies.get(COOKIE)
        assert self._session is not None
        return (
            cookie
            and session is not None
            and hmac.compare_digest(session.encode("utf-8", "replace"), self._session)
        )

    def _unauthorized(self, html: bool) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="earnwatch"'}
        if html and self._pages:
            body = self._templates().get_template("login.html").render()
            return Response(
                body, 401, media_type="text/html; charset=utf-8", headers=headers | HTML_HEADERS
            )
        return _text(401, "unauthorized\n", headers)

    # --- endpoints ---------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        try:
            healthy, reason = self._health()
        except Exception:
            log.exception("web: the health check raised")
            healthy, reason = False, "health check failed"
        if healthy:  # "ok", or "ok (degraded: ...)" while REST covers for the stream
            shown = reason if reason.startswith("ok (") else "ok"
            return _text(200, shown[:MAX_REASON] + "\n")
        text = " ".join(reason.split())[:MAX_REASON] or "unhealthy"
        return _text(503, text + "\n")

    async def metrics(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized(html=False)
        try:
            body = self._metrics.render()
        except Exception:
            log.exception("web: rendering /metrics failed")
            return _text(500, "metrics unavailable\n")
        return Response(body, 200, media_type=METRICS_CONTENT_TYPE)

    async def _snapshot(self) -> dict[str, Any] | None:
        assert self._status is not None
        try:
            async with self._building:  # one at a time: many open tabs do not pile up
                return _jsonable(await self._status())  # type: ignore[no-any-return]
        except Exception:
            log.exception("web: reading the status failed")
            return None

    async def page(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized(html=True)
        snapshot = await self._snapshot()
        if snapshot is None:
            return _text(500, "status unavailable\n")
        template = self._templates().get_template("status.html")
        try:  # in a thread: a page of thousands of rules takes a while to render
            body = await asyncio.to_thread(template.render, s=snapshot, refresh=REFRESH_SECONDS)
        except Exception:
            log.exception("web: rendering the status page failed")
            return _text(500, "status unavailable\n")
        return Response(body, 200, media_type="text/html; charset=utf-8", headers=HTML_HEADERS)

    async def api_status(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized(html=False)
        snapshot = await self._snapshot()
        if snapshot is None:
            return _text(500, "status unavailable\n")
        body = await asyncio.to_thread(json.dumps, snapshot, allow_nan=False, default=str)
        return Response(body, 200, media_type="application/json")

    async def api_history(self, request: Request) -> Response:
        """`/api/history?limit=&rule=&status=`: the alerts newest first, as `earnwatch
        history --json` gives them (errors as stored, already masked); a bad parameter is a
        400 naming it."""
        if not self._authorized(request):
            return self._unauthorized(html=False)
        query = request.query_params
        raw = query.get("limit", str(HISTORY_LIMIT))
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= HISTORY_MAX:
            return _text(400, f"limit: a whole number from 1 to {HISTORY_MAX}\n")
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            return _text(400, f"status: one of {', '.join(STATUSES)}\n")
        rule = query.get("rule") or None
        assert self._history is not None
        try:
            entries = await self._history(int(raw), rule, status)
        except Exception:
            log.exception("web: reading the history failed")
            return _text(500, "history unavailable\n")
        body = await asyncio.to_thread(json.dumps, entries, allow_nan=False, default=str)
        return Response(body, 200, media_type="application/json")

    async def login(self, request: Request) -> Response:
        """`/login?token=`: the session cookie, then the page; a wrong token is a 401."""
        if self._token is None:
            return RedirectResponse("/", status_code=303)
        given = request.query_params.get("token", "").encode()
        if not hmac.compare_digest(given, self._token):
            return self._unauthorized(html=True)
        response = RedirectResponse("/", status_code=303)
        assert self._session is not None
        response.set_cookie(
            COOKIE,
            self._session.decode(),
            max_age=COOKIE_AGE,
            path="/",
            httponly=True,
            samesite="strict",
        )
        return response

    def app(self) -> ASGIApp:
        endpoints = {"/healthz": self.healthz, "/metrics": self.metrics}
        if self._status is not None:
            endpoints |= {"/": self.page, "/api/status": self.api_status, "/login": self.login}
        if self._history is not None:
            endpoints["/api/history"] = self.api_history

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            # One endpoint per exact path, for GET and HEAD (the body dropped on HEAD).
            request = Request(scope, receive)
            endpoint = endpoints.get(scope["path"])
            if endpoint is None:
                response = _text(404, "not found\n")
            elif request.method not in ("GET", "HEAD"):
                response = _text(405, "method not allowed\n", {"Allow": ALLOW})
            else:
                response = await endpoint(request)
            await response(scope, receive, send)

        starlette = Starlette()
        starlette.router.default = dispatch
        return _Guard(starlette)


class _Guard:
    """Every response closes its connection and is not cached; a request target that is
    not a path, or is too long, is a 400 before any route sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = scope.get("raw_path") or b""
        if not raw.startswith(b"/") or len(raw) + len(scope["query_string"]) > (
            web.MAX_REQUEST_LINE
        ):
            await _text(400, "bad request\n", {"Connection": "close"})(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"connection", b"cache-control")
                ]
                headers += [(b"connection", b"close"), (b"cache-control", b"no-store")]
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, closing)


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus: no complete request within READ_TIMEOUT drops the
    client; a request cut short by the client's EOF is a 400."""

    _deadline: asyncio.TimerHandle | None = None
    _partial = False  # bytes of a request came, and no complete request yet

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.access_log = False  # never, whatever handlers logging has: /login has a token
        self._deadline = self.loop.call_later(web.READ_TIMEOUT, self._too_slow)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._partial = self.cycle is None and self.conn.their_state is h11.IDLE
        if self.cycle is not None:
            self._disarm()

    def eof_received(self) -> None:
        if self._partial and self.cycle is None and self.conn.their_state is h11.IDLE:
            self._partial = False
            with contextlib.suppress(RuntimeError):
                self.conn.receive_data(b"")  # h11 now knows the request will not finish
                self.handle_events()  # h11 raises on the cut request: uvicorn's 400

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.cycle is None:
            self.transport.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (SO_REUSEADDR, as asyncio's servers use)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(100)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class UvicornServer:
    """A running uvicorn server on one socket; see `web.WebServer`."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self._server = server
        self._sock: socket.socket | None = sock
        self._name = sock.getsockname()
        self._task: asyncio.Task[None] | None = asyncio.create_task(server.main_loop())

    @property
    def host(self) -> str:
        return str(self._name[0])

    @property
    def port(self) -> int:
        port = self._name[1]
        assert isinstance(port, int)
        return port

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock, self._sock = self._sock, None
        await self._server.shutdown(sockets=[sock] if sock is not None else None)

    async def __aenter__(self) -> UvicornServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def serve(
    host: str,
    port: int,
    health: web.HealthCheck,
    metrics: Metrics,
    *,
    status: web.StatusSource | None,
    history: web.HistorySource | None = None,
    token: str | None,
) -> UvicornServer:
    """See `web.start_web`."""
    config = uvicorn.Config(
        Routes(health, metrics, status, token, history).app(),
        http=_Protocol,
        ws="none",
        lifespan="off",
        log_config=None,  # the daemon's logging stays as it is set up
        access_log=False,  # a /login?token= line would hold the token
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=int(web.READ_TIMEOUT),
        timeout_graceful_shutdown=2,
        h11_max_incomplete_event_size=web.MAX_REQUEST_LINE,
    )
    config.load()
    # uvicorn says "Shutting down" and the like at INFO under the name uvicorn.error.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    sock = await asyncio.to_thread(_bind, host, port)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    running = UvicornServer(server, sock)
    pages = "/healthz, /metrics" + (", / (status page), /api/status" if status else "")
    pages += ", /api/history" if history else ""
    log.info("web: listening on %s:%d (%s)", running.host, running.port, pages)
    return running
