"""The channels' HTTP/1.1 client (service/h11client.py) against real servers on 127.0.0.1:
a raw TCP server that answers with exactly the bytes a test scripts (content-length,
chunked, close-delimited, oversized, silent, hung up), the TLS receiver with a throwaway
CA, and the SSRF guard with an injected (rebinding) resolver."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from service import h11client
from service.errors import DeliveryError
from service.h11client import H11Client, Headers
from service.httpclient import USER_AGENT, Resolver, TargetGuard, check_target
from service.notify.http import post
from service.retry_after import retry_after
from tests.servers import Receiver, TlsFiles
from tests.test_httpclient import Rebinding

pytestmark = pytest.mark.anyio
PRIVATE = TargetGuard(allow_private=True)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass(frozen=True)
class Answer:
    """What the server does with one request: send `data`, then keep the connection
    (`then="keep"`), close it (`"close"`), or never answer (`"hang"`, until stopped)."""

    data: bytes = OK
    then: str = "keep"
    drip: bytes = b""  # sent after `data`, a byte every `pause` seconds
    pause: float = 0.0


@dataclass
class Seen:
    connection: int
    head: bytes
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        lines = self.head.decode().split("\r\n")[1:]
        return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


@dataclass
class RawServer:
    """A TCP (or TLS) server in threads that reads each request (its head and a
    Content-Length body) and answers `answer(n)` for the n-th request (from 0). It
    counts connections accepted and how many were open at once."""

    answer: Callable[[int], Answer] = lambda n: Answer()
    tls: ssl.SSLContext | None = None
    connections: int = 0
    most_at_once: int = 0
    closed_by_client: int = 0
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open = 0
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    @property
    def open_now(self) -> int:
        with self._lock:
            return self._open

    def url(self, path: str = "/hook?token=s3cret", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with self._lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._accepting.join()
        self._listener.close()
        for thread in list(self._threads):
            thread.join()

    def _accept(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                number = self.connections
                self.connections += 1
                self._open += 1
                self.most_at_once = max(self.most_at_once, self._open)
                self._socks.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock, number), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._socks.append(sock)
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        with self._lock:
                            self.closed_by_client += 1
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                seen = Seen(number, head, b"")
                length = int(seen.headers.get("content-length", "0"))
                while len(buffer) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                seen.body, buffer = buffer[:length], buffer[length:]
                with self._lock:
                    index = len(self.requests)
                    self.requests.append(seen)
                reply = self.answer(index)
                if reply.then == "hang":
                    self._stop.wait()
                    return
                sock.sendall(reply.data)
                for byte in reply.drip:
                    time.sleep(reply.pause)
                    sock.sendall(bytes([byte]))
                if reply.then == "close":
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._open -= 1
            sock.close()


def script(*answers: Answer) -> Callable[[int], Answer]:
    return lambda n: answers[n] if n < len(answers) else Answer()


async def settle(condition: Callable[[], bool]) -> None:
    """Let the loop and the server's threads run until `condition` holds (bounded)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)


# --- framing and reuse -------------------------------------------------------------------


async def test_content_length_replies_reuse_one_keep_alive_connection() -> None:
    with RawServer() as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            replies = [
                await post(client, server.url(), b'{"n": %d}' % n, {"X-N": str(n)})
                for n in range(5)
            ]
            assert client.open_connections == 1 and client.idle_connections == 1
    assert [r.status_code for r in replies] == [200] * 5 and replies[0].body == b"ok"
    assert server.connections == 1 and [s.connection for s in server.requests] == [0] * 5
    first = server.requests[0]
    assert first.head.startswith(b"POST /hook?token=s3cret HTTP/1.1\r\n")
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert first.headers["user-agent"] == USER_AGENT
    assert first.headers["accept-encoding"] == "identity"
    assert first.headers["content-length"] == "8" and first.body == b'{"n": 0}'
    assert first.headers["x-n"] == "0"


async def test_a_chunked_reply_is_read_whole_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    with RawServer(script(Answer(chunked))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            first = await post(client, server.url(), b"{}", {})
            second = await post(client, server.url(), b"{}", {})
    assert (first.status_code, first.body, first.truncated) == (500, b"hello world", False)
    assert second.status_code == 200 and server.connections == 1


async def test_a_close_delimited_reply_is_read_to_the_end_and_not_reused() -> None:
    close_delimited = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    with RawServer(script(Answer(close_delimited, then="close"))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            first = await post(client, server.url(), b"{}", {})
            assert client.open_connections == 0
            second = await post(client, server.url(), b"{}", {})
    assert first.body == b"all of it" and second.body == b"ok"
    assert server.connections == 2


async def test_connection_close_from_the_server_is_honoured() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    with RawServer(script(Answer(closing, then="close"))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            await post(client, server.url(), b"{}", {})
            assert client.open_connections == 0
            await post(client, server.url(), b"{}", {})
    assert server.connections == 2


async def test_a_body_over_the_limit_is_cut_and_its_connection_closed() -> None:
    big = b"HTTP/1.1 500 Oops\r\nContent-Length: 1000\r\n\r\n" + b"e" * 1000
    with RawServer(script(Answer(big))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            cut = await post(client, server.url(), b"{}", {}, limit=100)
            assert client.open_connections == 0
            whole = await post(client, server.url(), b"{}", {}, limit=100)
        await settle(lambda: server.closed_by_client == 2)
    assert (len(cut.body), cut.truncated) == (100, True)
    assert (whole.body, whole.truncated) == (b"ok", False)
    assert server.connections == 2


async def test_a_body_of_exactly_the_limit_is_not_cut() -> None:
    exact = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"e" * 100
    with RawServer(script(Answer(exact))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            reply = await post(client, server.url(), b"{}", {}, limit=100)
            assert client.open_connections == 1
    assert (len(reply.body), reply.truncated) == (100, False)


# --- stale connections -------------------------------------------------------------------


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    with RawServer(script(Answer(OK, then="close"))) as server:  # no `Connection: close`
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            await post(client, server.url(), b"{}", {})
            await settle(lambda: server.open_now == 0)  # the server hung up
            await asyncio.sleep(0.05)  # and its EOF reached the client's reader
            reply = await post(client, server.url(), b"{}", {})
    assert reply.status_code == 200 and server.connections == 2 and len(server.requests) == 2


async def test_a_reused_connection_closed_before_any_reply_is_retried_once() -> None:
    # The race the idle check cannot see: the server takes the request and hangs up.
    hang_up = Answer(b"", then="close")
    with RawServer(script(Answer(), hang_up)) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            await post(client, server.url(), b"{}", {})
            reply = await post(client, server.url(), b"{}", {})
    assert reply.status_code == 200
    assert [s.connection for s in server.requests] == [0, 0, 1]


TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


async def test_a_408_on_a_reused_connection_is_its_idle_timeout_and_retried_once() -> None:
    # A server that times out idle keep-alive connections says so with a 408 and hangs up;
    # a request sent on that connection reads the 408 as its reply.
    with RawServer(script(Answer(), Answer(TIMED_OUT, then="close"))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            await post(client, server.url(), b"{}", {})
            reply = await post(client, server.url(), b"{}", {})
    assert reply.status_code == 200
    assert [s.connection for s in server.requests] == [0, 0, 1]
    assert server.requests[1].body == server.requests[2].body == b"{}"


async def test_a_408_on_a_new_connection_is_the_reply() -> None:
    with RawServer(lambda n: Answer(TIMED_OUT, then="close")) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            reply = await post(client, server.url(), b"{}", {})
    assert reply.status_code == 408 and len(server.requests) == 1


async def test_a_new_connection_closed_before_any_reply_is_not_retried() -> None:
    with RawServer(lambda n: Answer(b"", then="close")) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            with pytest.raises(DeliveryError) as caught:
                await post(client, server.url(), b"{}", {})
    assert str(caught.value) == f"http://127.0.0.1:{server.port}/***: RemoteProtocolError"
    assert not caught.value.permanent and len(server.requests) == 1


async def test_a_reused_connection_that_breaks_mid_reply_is_not_retried() -> None:
    partial = Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", then="close")
    with RawServer(script(Answer(), partial)) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            await post(client, server.url(), b"{}", {})
            with pytest.raises(DeliveryError, match="RemoteProtocolError"):
                await post(client, server.url(), b"{}", {})
    assert len(server.requests) == 2


# --- failures as DeliveryErrors ---------------------------------------------------------


async def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    with RawServer(lambda n: Answer(then="hang")) as server:
        async with H11Client(guard=PRIVATE, timeout=0.3) as client:
            with pytest.raises(DeliveryError) as caught:
                await post(client, server.url(), b"{}", {})
            assert client.open_connections == 0
    assert str(caught.value) == f"http://127.0.0.1:{server.port}/***: timed out (ReadTimeout)"
    assert not caught.value.permanent


async def test_the_read_timeout_is_per_read_so_a_slow_but_steady_reply_completes() -> None:
    # as httpx's read timeout was: the whole send is bounded by the delivery deadline
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"
    with RawServer(script(Answer(head, drip=b"steady", pause=0.1))) as server:
        async with H11Client(guard=PRIVATE, timeout=0.5) as client:
            reply = await post(client, server.url(), b"{}", {})
    assert reply.body == b"steady"


async def test_a_refused_connection_names_the_host_only_and_is_retryable() -> None:
    closed = Receiver().start()
    closed.stop()
    async with H11Client(guard=PRIVATE, timeout=2.0) as client:
        with pytest.raises(DeliveryError) as caught:
            await post(client, closed.url_for("/hook/s3cret?token=s3cret"), b"{}", {})
    assert str(caught.value) == f"http://127.0.0.1:{closed.port}/***: ConnectError"
    assert not caught.value.permanent and "s3cret" not in repr(caught.value.__cause__)


async def test_a_header_block_over_the_cap_is_a_clean_delivery_error() -> None:
    huge = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (h11client.MAX_HEADER_BYTES + 10) + b"\r\n\r\n"
    with RawServer(script(Answer(huge))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            with pytest.raises(DeliveryError) as caught:
                await post(client, server.url(), b"{}", {})
            assert client.open_connections == 0
    assert str(caught.value) == f"http://127.0.0.1:{server.port}/***: RemoteProtocolError"
    assert not caught.value.permanent


async def test_a_malformed_reply_is_a_protocol_error() -> None:
    with RawServer(script(Answer(b"SMTP ready\r\n\r\n"))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            with pytest.raises(DeliveryError, match=r"RemoteProtocolError$"):
                await post(client, server.url(), b"{}", {})


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("ftp://example.com/x", "UnsupportedProtocol"),
        ("http:///nohost", "InvalidURL"),
        ("http://example.com:99999/x", "InvalidURL"),
    ],
)
async def test_an_unusable_url_is_permanent(url: str, kind: str) -> None:
    async with H11Client(guard=PRIVATE, timeout=2.0) as client:
        with pytest.raises(DeliveryError) as caught:
            await post(client, url, b"{}", {})
    assert caught.value.permanent and str(caught.value).endswith(f"unusable URL ({kind})")


async def test_a_header_with_a_line_break_is_refused_before_sending() -> None:
    with RawServer() as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            with pytest.raises(DeliveryError, match="LocalProtocolError"):
                await post(client, server.url(), b"{}", {"X-Evil": "a\r\nInjected: 1"})
    assert server.connections == 0


# --- reply headers -------------------------------------------------------------------------


async def test_reply_headers_are_read_without_regard_to_case_and_read_only() -> None:
    reply_bytes = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nVary: a\r\nVARY: b\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    with RawServer(script(Answer(reply_bytes))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            reply = await post(client, server.url(), b"{}", {})
    headers = reply.headers
    assert headers["Retry-After"] == headers.get("retry-after") == "7"
    assert "RETRY-AFTER" in headers and headers.get("x-missing") is None
    assert headers["vary"] == "a, b" and retry_after(headers) == 7.0
    with pytest.raises(TypeError):
        headers["x"] = "y"  # type: ignore[index]
    assert Headers({"Date": "x"})["date"] == "x"


# --- the pool ------------------------------------------------------------------------------


async def test_the_pool_opens_at_most_20_connections_and_keeps_at_most_10() -> None:
    def answer(n: int) -> Answer:
        time.sleep(0.2)  # hold each reply a moment, so that requests overlap
        return Answer()

    with RawServer(answer) as server:
        async with H11Client(guard=PRIVATE, timeout=5.0) as client:
            replies = await asyncio.gather(
                *(post(client, server.url(), b"{}", {}) for _ in range(30))
            )
            assert client.idle_connections == client.open_connections == 10
    assert [r.status_code for r in replies] == [200] * 30
    assert server.connections <= h11client.MAX_CONNECTIONS
    assert 10 < server.most_at_once <= h11client.MAX_CONNECTIONS


async def test_idle_connections_are_closed_after_the_keepalive_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(h11client, "KEEPALIVE_EXPIRY", 0.05)
    with RawServer() as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            await post(client, server.url(), b"{}", {})
            await settle(lambda: client.open_connections == 0)
            assert client.open_connections == 0
            await settle(lambda: server.closed_by_client == 1)
            assert server.closed_by_client == 1
            await post(client, server.url(), b"{}", {})
    assert server.connections == 2


async def test_aclose_closes_the_idle_connections() -> None:
    with RawServer() as server:
        client = H11Client(guard=PRIVATE, timeout=2.0)
        await post(client, server.url(), b"{}", {})
        await post(client, server.url(path="/other"), b"{}", {})
        await client.aclose()
        assert client.open_connections == 0
        await settle(lambda: server.closed_by_client == 1)
    assert server.closed_by_client == 1


async def test_user_and_password_in_the_url_are_sent_as_basic_auth() -> None:
    with RawServer() as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            await post(client, f"http://bot:p%40ss@127.0.0.1:{server.port}/t", b"{}", {})
    [seen] = server.requests
    assert seen.headers["authorization"] == "Basic Ym90OnBAc3M="  # bot:p@ss
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> TlsFiles:
    return TlsFiles()


def named(*names: str) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.1"] if host in names else []

    return resolve


async def test_https_against_a_local_tls_server_with_sni_for_the_name(tls: TlsFiles) -> None:
    sni: list[str | None] = []
    context = tls.server_context()
    context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment]
    with RawServer(tls=context) as server:
        guard = TargetGuard(allow_private=True, resolve=named("localhost"))
        async with H11Client(guard=guard, timeout=2.0, verify=tls.client_context()) as client:
            replies = [await post(client, server.url(host="localhost"), b"{}", {}) for _ in "ab"]
    assert [r.status_code for r in replies] == [200, 200] and server.connections == 1
    assert sni == ["localhost"]
    assert server.requests[0].headers["host"] == f"localhost:{server.port}"


async def test_a_certificate_for_another_name_fails_the_connect(tls: TlsFiles) -> None:
    with RawServer(tls=tls.server_context()) as server:
        guard = TargetGuard(allow_private=True, resolve=named("wrong.example"))
        async with H11Client(guard=guard, timeout=2.0, verify=tls.client_context()) as client:
            with pytest.raises(DeliveryError) as caught:
                await post(client, server.url(host="wrong.example"), b"{}", {})
    assert str(caught.value) == f"https://wrong.example:{server.port}/***: ConnectError"
    assert not caught.value.permanent and server.requests == []


async def test_the_default_context_does_not_trust_a_self_signed_ca(tls: TlsFiles) -> None:
    with RawServer(tls=tls.server_context()) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            with pytest.raises(DeliveryError, match="ConnectError"):
                await post(client, server.url(), b"{}", {})
    assert server.requests == []


# --- the SSRF guard ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0x7f000001", "[::ffff:127.0.0.1]"])
async def test_the_guard_refuses_a_private_address_and_no_connection_is_made(host: str) -> None:
    with RawServer() as server:
        async with H11Client(guard=TargetGuard(), timeout=2.0) as client:
            with pytest.raises(DeliveryError) as caught:
                await post(client, server.url(host=host), b"{}", {})
    assert caught.value.permanent and "refused target" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert server.connections == 0


async def test_dns_rebinding_between_check_and_connect_is_refused_at_connect() -> None:
    with RawServer() as server:
        dns = Rebinding(["93.184.216.34"], ["127.0.0.1"])
        url = server.url(host="hooks.example.com")
        check_target(url, allow_private=False, allowed_hosts=frozenset(), resolve=dns.sync)
        async with H11Client(guard=TargetGuard(resolve=dns), timeout=2.0) as client:
            with pytest.raises(DeliveryError, match=r"127\.0\.0\.1 \(loopback\)") as caught:
                await post(client, url, b"{}", {})
    assert caught.value.permanent and dns.asked == ["hooks.example.com"] * 2
    assert server.connections == 0


async def test_every_address_is_checked_and_the_checked_one_is_connected_to() -> None:
    with RawServer() as server:
        mixed = Rebinding(["93.184.216.34", "127.0.0.1"])
        guard = TargetGuard(allowed_hosts=frozenset(), resolve=mixed)
        async with H11Client(guard=guard, timeout=2.0) as client:
            with pytest.raises(DeliveryError, match=r"127\.0\.0\.1"):
                await post(client, server.url(host="hooks.example.com"), b"{}", {})
        assert server.connections == 0
        dns = Rebinding(["127.0.0.1"])
        guard = TargetGuard(allow_private=True, resolve=dns)
        async with H11Client(guard=guard, timeout=2.0) as client:
            await post(client, server.url(host="hooks.example.com"), b"{}", {})
    assert server.requests[0].headers["host"] == f"hooks.example.com:{server.port}"


async def test_a_name_that_does_not_resolve_is_a_retryable_connect_error() -> None:
    async def no_dns(host: str, port: int) -> Sequence[str]:
        raise OSError("no DNS")

    async with H11Client(guard=TargetGuard(resolve=no_dns), timeout=2.0) as client:
        with pytest.raises(DeliveryError) as caught:
            await post(client, "http://hooks.example.com/hook?k=s3cret", b"{}", {})
    assert str(caught.value) == "http://hooks.example.com/***: ConnectError"
    assert not caught.value.permanent


async def test_a_resolver_that_hangs_is_a_connect_timeout() -> None:
    async def slow_dns(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(30)
        return []

    async with H11Client(guard=TargetGuard(resolve=slow_dns), timeout=0.2) as client:
        with pytest.raises(DeliveryError) as caught:
            await post(client, "http://hooks.example.com/hook", b"{}", {})
    assert str(caught.value) == "http://hooks.example.com/***: timed out (ConnectTimeout)"


async def test_a_redirect_is_returned_not_followed() -> None:
    redirect = (
        b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n"
    )
    with RawServer(script(Answer(redirect))) as server:
        async with H11Client(guard=PRIVATE, timeout=2.0) as client:
            reply = await post(client, server.url(), b"{}", {})
    assert reply.status_code == 302 and len(server.requests) == 1


@pytest.fixture
def receivers() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


async def test_an_http_1_0_receiver_works_one_connection_a_request(receivers: Receiver) -> None:
    async with H11Client(guard=PRIVATE, timeout=2.0) as client:
        for _ in range(3):
            reply = await post(client, receivers.url_for("/hook"), b"{}", {})
            assert reply.status_code == 200 and reply.body == b"ok"
    assert receivers.connections == 3
