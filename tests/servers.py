"""Real servers on 127.0.0.1 for tests: an HTTP `Receiver` with scripted replies, and an
SMTP server (`SmtpServer`, aiosmtpd) with scripted replies, STARTTLS, implicit TLS and
AUTH, plus `TlsFiles` (a trustme CA and a server certificate for 127.0.0.1).

Both record what they saw, so tests assert on the wire: headers, body bytes, arrival
times, connections accepted, AUTH attempts. Use them as context managers (or through the
fixtures in tests/notify/conftest.py); leaving the block stops the server and joins its
threads, so no socket outlives the test.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP reply; `delay` seconds pass before it is sent."""

    status: int = 200
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request as received. `headers` keys are lower-case; `at` is time.monotonic()."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self.receiver._lock:
            self.receiver.connections += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        recorded = Recorded(
            self.command,
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            time.monotonic(),
        )
        reply = receiver._record(recorded)
        if reply.delay and receiver._stopping.wait(reply.delay):
            return
        data = reply.body.encode() if isinstance(reply.body, str) else reply.body
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST
    do_PUT = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver:
    """An HTTP server on 127.0.0.1:<free port> in a thread. Replies come from the script
    (ints are statuses, or `Reply`s), then `default` once the script is used up."""

    def __init__(self, script: Iterable[int | Reply] = (), *, default: Reply | None = None) -> None:
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._stopping = threading.Event()
        self.default = default or Reply(200, b"ok")
        self.requests: list[Recorded] = []
        self.connections = 0
        self.script(*script)
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + path

    def script(self, *replies: int | Reply) -> None:
        """Queue these replies (after any still queued)."""
        with self._lock:
            self._script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def _record(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            return self._script.popleft() if self._script else self.default

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- SMTP --------------------------------------------------------------------------------


@dataclass
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""

    ca: trustme.CA = field(default_factory=trustme.CA)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@dataclass(frozen=True)
class Mail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    tls: bool

    @property
    def parsed(self) -> EmailMessage:
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _SmtpHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        reply = self.server._next(self.server.rcpt_replies, "250 OK")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.server._next(self.server.data_replies, "250 Message accepted")
        if reply.startswith("250"):
            mail = Mail(
                envelope.mail_from,
                tuple(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                session.ssl is not None,
            )
            with self.server._lock:
                self.server.messages.append(mail)
        return reply


class SmtpServer:
    """aiosmtpd on 127.0.0.1:<free port>. Scripted replies per RCPT and per DATA (e.g.
    `["451 4.3.0 try later", "250 OK"]`), then 250. `tls` offers STARTTLS with that
    context; `implicit_tls` wraps the whole connection; `users` requires AUTH."""

    def __init__(
        self,
        *,
        rcpt_replies: Iterable[str] = (),
        data_replies: Iterable[str] = (),
        tls: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls: ssl.SSLContext | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.rcpt_replies = deque(rcpt_replies)
        self.data_replies = deque(data_replies)
        self.messages: list[Mail] = []
        self.auth_attempts: list[tuple[str, bool]] = []  # (username, on a TLS session)
        self.users = dict(users or {})
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs |= {"tls_context": tls, "require_starttls": require_starttls}
        if users is not None:
            # AUTH is required (and only over TLS) when STARTTLS is offered; otherwise it
            # is merely offered, so a test can show a client did not try it.
            starttls = tls is not None
            kwargs |= {"authenticator": self._authenticate, "auth_required": starttls}
            kwargs["auth_require_tls"] = starttls
        self.port = _free_port()
        self._kwargs = kwargs | {"ssl_context": implicit_tls}
        self._controller: Controller | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _next(self, replies: deque[str], default: str) -> str:
        with self._lock:
            return replies.popleft() if replies else default

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username, password = auth_data.login.decode(), auth_data.password.decode()
        with self._lock:
            self.auth_attempts.append((username, session.ssl is not None))
        ok = self.users.get(username) == password
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        # Our own loop, so stop() can close it (the Controller leaves its loop open).
        self._loop = asyncio.new_event_loop()
        self._controller = Controller(
            _SmtpHandler(self),
            hostname="127.0.0.1",
            port=self.port,
            loop=self._loop,
            **self._kwargs,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        assert self._controller is not None and self._loop is not None
        self._controller.stop()
        self._loop.close()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
