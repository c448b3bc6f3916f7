"""Hostile receivers on 127.0.0.1 for delivery tests: `DripReceiver` answers a POST with
its status line and headers at once, then its body `chunk` bytes at a time, `interval`
seconds apart (1 byte every 2 s: a slow loris on the reply), or as fast as the client
reads (a 512 MB error body).

It records every request (its `webhook-id`, when it started and ended, how many body
bytes went out, whether the client hung up first) and how many requests of one
`webhook-id` were open at once (`max_open_per_id`): a delivery sent twice concurrently
shows as 2. A hang-up is noticed within one `interval` (the socket is watched while the
server waits), so a request the client abandoned does not count as open afterwards.
Use it as a context manager; leaving the block stops it and joins its threads.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    """One request: `webhook_id` may be empty; times are time.monotonic()."""

    webhook_id: str
    started: float
    ended: float | None = None
    sent: int = 0  # body bytes written before the end or the hang-up
    hung_up: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, receiver: DripReceiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        self.rfile.read(int(self.headers.get("content-length") or 0))
        seen = receiver._open(self.headers.get("webhook-id") or "")
        try:
            self.send_response(receiver.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(receiver.size))
            self.end_headers()
            self.wfile.flush()
            self._drip(receiver, seen)
        except OSError:
            seen.hung_up = True
        finally:
            receiver._close(seen)
        self.close_connection = True

    def _drip(self, receiver: DripReceiver, seen: Seen) -> None:
        piece = receiver.fill * receiver.chunk
        while seen.sent < receiver.size and not receiver._stopping.is_set():
            if receiver.interval and self._client_gone(receiver.interval):
                seen.hung_up = True
                return
            n = min(len(piece), receiver.size - seen.sent)
            self.wfile.write(piece[:n])
            self.wfile.flush()
            seen.sent += n

    def _client_gone(self, wait: float) -> bool:
        """Wait up to `wait` s; True if the client closed its end meanwhile."""
        readable, _, _ = select.select([self.connection], [], [], wait)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class DripReceiver:
    """An HTTP server in a thread whose replies are slow or large (see the module doc)."""

    def __init__(
        self,
        *,
        status: int = 200,
        size: int = 1000,
        chunk: int = 1,
        interval: float = 2.0,
        fill: bytes = b"x",
    ) -> None:
        self.status, self.size, self.chunk, self.interval, self.fill = (
            status,
            size,
            chunk,
            interval,
            fill,
        )
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.seen: list[Seen] = []
        self._open_ids: Counter[str] = Counter()
        self.max_open_per_id = 0
        self.max_open = 0
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url_for(self, path: str) -> str:
        return self.url + path

    def open_now(self) -> int:
        with self._lock:
            return sum(self._open_ids.values())

    def ids(self) -> set[str]:
        with self._lock:
            return {s.webhook_id for s in self.seen}

    def _open(self, webhook_id: str) -> Seen:
        seen = Seen(webhook_id, time.monotonic())
        with self._lock:
            self.seen.append(seen)
            self._open_ids[webhook_id] += 1
            self.max_open_per_id = max(self.max_open_per_id, self._open_ids[webhook_id])
            self.max_open = max(self.max_open, sum(self._open_ids.values()))
        return seen

    def _close(self, seen: Seen) -> None:
        with self._lock:
            seen.ended = time.monotonic()
            self._open_ids[seen.webhook_id] -= 1

    def start(self) -> DripReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> DripReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SlowSmtp:
    """An SMTP server on 127.0.0.1 that answers every command correctly but `delay`
    seconds late: each reply comes within a per-command timeout, the whole submission
    does not. Counts the connections and whether a message ever got through (`mails`)."""

    def __init__(self, delay: float = 0.6) -> None:
        self.delay = delay
        self.connections = 0
        self.mails = 0
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._talk, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _reply(self, connection: socket.socket, line: bytes) -> bool:
        if self._stopping.wait(self.delay):
            return False
        connection.sendall(line)
        return True

    def _talk(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as lines:
            try:
                if not self._reply(connection, b"220 slow.example ESMTP\r\n"):
                    return
                in_data = False
                for raw in lines:
                    if in_data:
                        if raw in (b".\r\n", b".\n"):
                            in_data = False
                            self.mails += 1
                            if not self._reply(connection, b"250 queued\r\n"):
                                return
                        continue
                    verb = raw[:4].upper()
                    reply = {b"EHLO": b"250 slow.example\r\n", b"DATA": b"354 go on\r\n"}
                    if not self._reply(connection, reply.get(verb, b"250 ok\r\n")):
                        return
                    in_data = verb == b"DATA"
                    if verb == b"QUIT":
                        return
            except OSError:
                return

    def __enter__(self) -> SlowSmtp:
        self._accept.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._accept.join()
        self._listener.close()
        for thread in self._threads:
            thread.join(5)
