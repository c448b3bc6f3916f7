"""The notification channels' HTTP/1.1 client: asyncio streams and h11's state machine
(framing: content-length, chunked, close-delimited, keep-alive), a bounded pool of
keep-alive connections per origin, and the SSRF guard on every connect. httpx, httpcore
and anyio stay out of the channels' path (providers keep httpx: it is what respx mocks).

Measured (bench/http_client.py): httpx's streamed POST costs about ten times the CPU of
this client per request, which capped delivery throughput.

What it keeps from the httpx client it replaces (`build_client(guard=...)`):

- the guard: every address the host resolves to is checked by `TargetGuard.addresses()`
  and a checked address is connected to; `Host` and TLS SNI carry the name. No proxy is
  ever used, no redirect followed, and there is no way to ask for a unix socket;
- TLS with the shared verifying context (certifi's CA bundle);
- limits: MAX_CONNECTIONS open in all, MAX_KEEPALIVE kept idle, each closed after
  KEEPALIVE_EXPIRY seconds idle; `aclose()` closes them all;
- timeouts as httpx had them: a connect (the resolve, then each address) within
  min(timeout, 5 s); waiting for a free connection, writing the request, and each read of
  the reply, within `timeout` (ConnectTimeout, PoolTimeout, WriteTimeout, ReadTimeout).
  A reply that keeps dripping is cut by the delivery worker's deadline of a whole send
  (EARNWATCH_DELIVERY_TIMEOUT), not here;
- errors are classes named as httpx names them (ConnectError, ReadError,
  RemoteProtocolError...), and their messages never hold a URL's path or query;
- a reply is read up to `limit` bytes of body (one past it says "truncated", and such a
  connection is closed, never reused) and MAX_HEADER_BYTES of header block; the request
  asks for `accept-encoding: identity`.

A keep-alive connection the server closed while it sat idle (seen as EOF or a reset before
any byte of the reply, or a `408 Request Timeout` as the reply: a server's notice that it
timed the idle connection out, which may have been sent before the request) is retried
once on a new connection; nothing else is retried here (the delivery worker retries, with
the same webhook-id).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Final, NamedTuple
from urllib.parse import quote, unquote, urlsplit

import h11

from service.httpclient import (
    USER_AGENT,
    ResolveError,
    ResolveTimeout,
    TargetGuard,
    verified_context,
)

#: Connections open at once, in all origins (httpx's LIMITS of the client it replaces).
MAX_CONNECTIONS: Final = 20
#: Idle connections kept for reuse, in all origins.
MAX_KEEPALIVE: Final = 10
#: Seconds an idle connection is kept before it is closed.
KEEPALIVE_EXPIRY: Final = 5.0
#: The longest a connect may take, whatever the client's timeout.
CONNECT_TIMEOUT_CAP: Final = 5.0
#: The largest header block a reply may send (h11's cap on an incomplete event; httpcore
#: uses the same figure).
MAX_HEADER_BYTES: Final = 100 * 1024
_READ_SIZE: Final = 64 * 1024
_USER_AGENT: Final = USER_AGENT.encode("ascii")


# --- errors: httpx's names, so that a DeliveryError reads as it did ---------------------


class TransportError(Exception):
    """No complete reply was received. The class name is what an error message quotes."""


class TimeoutException(TransportError):
    pass


class ConnectTimeout(TimeoutException):
    pass


class PoolTimeout(TimeoutException):
    pass


class WriteTimeout(TimeoutException):
    pass


class ReadTimeout(TimeoutException):
    pass


class NetworkError(TransportError):
    pass


class ConnectError(NetworkError):
    pass


class WriteError(NetworkError):
    pass


class ReadError(NetworkError):
    pass


class RemoteProtocolError(TransportError):
    """The server broke HTTP/1.1 (or hung up without a reply, or sent too large a
    header block)."""


class LocalProtocolError(TransportError):
    """The request cannot be sent as given (a header with a line break)."""


class UnsupportedProtocol(TransportError):
    """Not an http:// or https:// URL."""


class InvalidURL(TransportError):
    """A URL without a host, with a bad port or a host that is no valid name."""


class _Stale(Exception):
    """A reused connection was found closed before any byte of the reply."""


# --- replies -----------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """A reply's headers: read-only, looked up without regard to case, names lower-case;
    a header sent more than once reads as its values joined by ", " (as httpx does)."""

    __slots__ = ("_items",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]] | Mapping[str, str] = ()) -> None:
        items: dict[str, str] = {}
        pairs: Iterable[tuple[bytes | str, bytes | str]] = (
            raw.items() if isinstance(raw, Mapping) else raw
        )
        for name, value in pairs:
            key = (name if isinstance(name, str) else name.decode("latin-1")).lower()
            text = value if isinstance(value, str) else _text(value)
            items[key] = f"{items[key]}, {text}" if key in items else text
        self._items = items

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


class Response(NamedTuple):
    """A reply: its status, headers and at most `limit` bytes of body."""

    status_code: int
    headers: Headers
    body: bytes
    truncated: bool


# --- URLs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    tls: bool
    host: str  # what is resolved and checked, and the TLS server name (IDNA, no brackets)
    port: int
    host_header: bytes
    target: bytes
    authorization: bytes | None  # Basic, from a URL's user:password@

    @property
    def origin(self) -> tuple[bool, str, int]:
        return (self.tls, self.host, self.port)


def _parse(url: str) -> _Target:
    """The parts of `url` a request needs; errors never quote the URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidURL("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsupportedProtocol("only http:// and https:// URLs are supported")
    name = parts.hostname
    if not name:
        raise InvalidURL("a URL without a host")
    try:
        host = name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidURL("a host that is not a valid name") from None
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != default:
        shown = f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not target.isascii() or any(ch <= " " or ch == "\x7f" for ch in target):
        target = quote(target, safe="/?&=%:@!$'()*+,;~-._[]")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = b"Basic " + base64.b64encode(pair.encode())
    return _Target(
        scheme == "https",
        host,
        port or default,
        shown.encode("ascii"),
        target.encode("ascii"),
        authorization,
    )


# --- connections ---------------------------------------------------------------------------


class _Connection:
    __slots__ = ("closed", "expires", "origin", "protocol", "reader", "writer")

    def __init__(
        self,
        origin: tuple[bool, str, int],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.expires = 0.0
        self.closed = False

    def open(self) -> bool:
        """Not closed by either side, as far as the loop has seen."""
        return not self.reader.at_eof() and not self.writer.is_closing()


class H11Client:
    """One guarded pool of HTTP/1.1 connections; see the module's docstring. Use it from
    one event loop; close it with `aclose()` (or `async with`)."""

    def __init__(
        self,
        *,
        guard: TargetGuard,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._guard = guard
        self._timeout = timeout
        self._connect_timeout = min(timeout, CONNECT_TIMEOUT_CAP)
        self._verify = verify
        self._context = verify if isinstance(verify, ssl.SSLContext) else None
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open now, idle or in use."""
        return self._open

    @property
    def idle_connections(self) -> int:
        return self._idle_count

    async def post(
        self, url: str, content: bytes, headers: Mapping[str, str], *, limit: int
    ) -> Response:
        """POST `content` to `url` once; raise a TransportError, or UnsafeTargetError for a
        target the guard refuses."""
        return await self.request("POST", url, content, headers, limit=limit)

    async def request(
        self,
        method: str,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        *,
        limit: int,
    ) -> Response:
        if self._closed:
            raise RuntimeError("the client is closed")
        target = _parse(url)
        request = _request(method, target, content, headers)
        slots = self._slots
        if slots.locked():
            try:
                async with asyncio.timeout(self._timeout):
                    await slots.acquire()
            except TimeoutError:
                raise PoolTimeout("no free connection in time") from None
        else:
            await slots.acquire()  # free: returns without waiting
        try:
            connection = self._take_idle(target.origin)
            if connection is not None:
                try:
                    return await self._exchange(connection, request, content, limit, True)
                except _Stale:
                    pass  # closed by the server while idle: once more, on a new one
            connection = await self._connect(target)
            return await self._exchange(connection, request, content, limit, False)
        finally:
            slots.release()

    # --- one request on one connection -------------------------------------------------

    async def _exchange(
        self,
        connection: _Connection,
        request: h11.Request,
        content: bytes,
        limit: int,
        reused: bool,
    ) -> Response:
        protocol = connection.protocol
        reader = connection.reader
        writing = True
        received = 0  # bytes of the reply so far
        ended = False  # the server closed its side (a close-delimited body ends so)
        try:
            async with asyncio.timeout(self._timeout) as timer:  # the write, then each read
                try:
                    data = protocol.send(request) or b""
                    if content:
                        data += protocol.send(h11.Data(data=content)) or b""
                    data += protocol.send(h11.EndOfMessage()) or b""
                except h11.LocalProtocolError as exc:
                    raise LocalProtocolError(str(exc)) from None
                try:
                    connection.writer.write(data)
                    await connection.writer.drain()
                except OSError as exc:
                    if reused:
                        raise _Stale from exc
                    raise WriteError("the connection broke while sending") from exc
                writing = False
                status = 0
                raw_headers: list[tuple[bytes, bytes]] = []
                body = bytearray()
                truncated = False
                while True:
                    event = protocol.next_event()
                    if event is h11.NEED_DATA:
                        size = _READ_SIZE
                        if not status:  # h11 checks its cap only between reads: cut exact
                            size = min(size, MAX_HEADER_BYTES + 1 - received)
                            if size <= 0:
                                raise RemoteProtocolError("the reply's header block is too large")
                        timer.reschedule(asyncio.get_running_loop().time() + self._timeout)
                        try:
                            chunk = await reader.read(size)
                        except OSError as exc:
                            if reused and not received:
                                raise _Stale from exc
                            raise ReadError("the connection broke while reading") from exc
                        if not chunk:
                            if reused and not received:
                                raise _Stale
                            ended = True
                        received += len(chunk)
                        protocol.receive_data(chunk)
                    elif type(event) is h11.Response:
                        status = event.status_code
                        if status == 408 and reused:  # the server timed the idle connection
                            raise _Stale  # out before it hung up (as Go's net/http reads it)
                        raw_headers = list(event.headers)
                    elif type(event) is h11.Data:
                        body += event.data
                        if len(body) > limit:
                            truncated = True
                            break
                    elif type(event) is h11.EndOfMessage:
                        break
                    # an InformationalResponse (1xx) is skipped
        except TimeoutError:
            self._discard(connection, abort=True)
            if writing:
                raise WriteTimeout("sending the request timed out") from None
            raise ReadTimeout("reading the reply timed out") from None
        except h11.RemoteProtocolError as exc:
            self._discard(connection, abort=True)
            raise RemoteProtocolError(_protocol_reason(exc)) from None
        except BaseException:
            self._discard(connection, abort=True)
            raise
        if truncated:  # the rest is never read: hang up now (the reset tells the server)
            self._discard(connection, abort=True)
            with suppress(Exception):
                await connection.writer.wait_closed()
        elif not ended and protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            self._keep(connection)
        else:
            self._discard(connection)  # `Connection: close`, or a close-delimited body
        return Response(status, Headers(raw_headers), bytes(body[:limit]), truncated)

    # --- the pool --------------------------------------------------------------------------

    async def _connect(self, target: _Target) -> _Connection:
        try:
            addresses = await self._guard.addresses(target.host, target.port, self._connect_timeout)
        except ResolveTimeout:
            raise ConnectTimeout("resolving the host timed out") from None
        except ResolveError:
            raise ConnectError("the host does not resolve") from None
        context = self._tls_context() if target.tls else None
        failure: TransportError = ConnectError("no address to connect to")
        for address in addresses:
            self._make_room()
            try:
                async with asyncio.timeout(self._connect_timeout):
                    reader, writer = await asyncio.open_connection(
                        address,
                        target.port,
                        ssl=context,
                        server_hostname=target.host if context is not None else None,
                        ssl_handshake_timeout=self._connect_timeout if context else None,
                    )
            except TimeoutError:
                failure = ConnectTimeout("connecting timed out")
                continue
            except ssl.SSLError:
                raise ConnectError("the TLS handshake failed") from None
            except (OSError, ValueError):  # ValueError: an SSL CertificateError
                failure = ConnectError("the connection was refused or failed")
                continue
            self._open += 1
            return _Connection(target.origin, reader, writer)
        raise failure

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            if self._verify is False:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                self._context = context
            else:
                self._context = verified_context()
        return self._context

    def _take_idle(self, origin: tuple[bool, str, int]) -> _Connection | None:
        stack = self._idle.get(origin)
        if not stack:
            return None
        while stack:  # past their expiry they are gone: the sweeper runs at the soonest
            connection = stack.pop()
            self._idle_count -= 1
            if connection.open():
                return connection
            self._discard(connection)
        return None

    def _keep(self, connection: _Connection) -> None:
        if self._closed or self._idle_count >= MAX_KEEPALIVE:
            self._discard(connection)
            return
        loop = asyncio.get_running_loop()
        connection.expires = loop.time() + KEEPALIVE_EXPIRY
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1
        if self._sweeper is None:
            self._sweeper = loop.call_later(KEEPALIVE_EXPIRY, self._sweep)

    def _make_room(self) -> None:
        """Close the longest-idle connection when MAX_CONNECTIONS are open (the caller is
        about to open one; at most MAX_CONNECTIONS - 1 others are in use)."""
        if self._open < MAX_CONNECTIONS or not self._idle_count:
            return
        oldest = min((stack[0] for stack in self._idle.values() if stack), key=lambda c: c.expires)
        self._idle[oldest.origin].remove(oldest)
        self._idle_count -= 1
        self._discard(oldest)

    def _sweep(self) -> None:
        """Close the idle connections past their expiry; come back for the others."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        soonest: float | None = None
        for origin, stack in list(self._idle.items()):
            kept = []
            for connection in stack:
                if now < connection.expires and connection.open():
                    kept.append(connection)
                    if soonest is None or connection.expires < soonest:
                        soonest = connection.expires
                else:
                    self._idle_count -= 1
                    self._discard(connection)
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]
        if soonest is not None:
            self._sweeper = loop.call_at(soonest, self._sweep)

    def _discard(self, connection: _Connection, *, abort: bool = False) -> None:
        """Close `connection` (at once with `abort`: no TLS close_notify, nothing
        flushed), once; the socket itself closes on the loop's next turn."""
        if connection.closed:
            return
        connection.closed = True
        self._open -= 1
        if abort:
            connection.writer.transport.abort()
        else:
            connection.writer.close()

    async def aclose(self) -> None:
        """Close every idle connection; one in use is closed when its request ends."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle = [connection for stack in self._idle.values() for connection in stack]
        self._idle.clear()
        self._idle_count = 0
        for connection in idle:
            self._discard(connection)
        if idle:
            with suppress(Exception):
                async with asyncio.timeout(1.0):
                    await asyncio.gather(
                        *(c.writer.wait_closed() for c in idle), return_exceptions=True
                    )

    async def __aenter__(self) -> H11Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _request(
    method: str, target: _Target, content: bytes, headers: Mapping[str, str]
) -> h11.Request:
    """The request head: our defaults, then the caller's headers (which win, by name
    without regard to case), then Content-Length."""
    head: dict[bytes, tuple[bytes, bytes]] = {
        b"host": (b"Host", target.host_header),
        b"accept": (b"Accept", b"*/*"),
        b"accept-encoding": (b"Accept-Encoding", b"identity"),
        b"connection": (b"Connection", b"keep-alive"),
        b"user-agent": (b"User-Agent", _USER_AGENT),
    }
    if target.authorization is not None:
        head[b"authorization"] = (b"Authorization", target.authorization)
    for name, value in headers.items():
        raw = name.encode("ascii")
        head[raw.lower()] = (raw, value.encode("ascii"))
    head[b"content-length"] = (b"Content-Length", str(len(content)).encode("ascii"))
    try:
        return h11.Request(method=method, target=target.target, headers=list(head.values()))
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(str(exc)) from None


def _protocol_reason(exc: h11.RemoteProtocolError) -> str:
    """h11's reason, which may quote the server's bytes: only its first line, shortened."""
    text = str(exc).splitlines()[0] if str(exc) else "protocol error"
    return text[:120]
