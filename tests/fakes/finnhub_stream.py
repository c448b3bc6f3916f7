"""A real WebSocket server on 127.0.0.1 that speaks Finnhub's trade stream: `?token=KEY`
(HTTP 401 for another key), `subscribe`/`unsubscribe` messages, `trade` and `ping`
messages pushed by the test, and two faults the free stream is known for: closing the
connection, and going silent without closing. It runs its own event loop in a thread,
so a test (or a daemon subprocess) talks to it like to the real one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


class FakeFinnhubStream:
    def __init__(self, token: str = "test-finnhub-key", *, ping_every: float = 0.5) -> None:
        self.token = token
        self.ping_every = ping_every
        self.lock = threading.Lock()
        self.connections = 0  # accepted (token right)
        self.refused = 0
        self.tokens_seen: list[str] = []
        self.subscriptions: list[tuple[int, str, str]] = []  # (connection number, type, symbol)
        self.silent = False  # True: nothing is sent (no ping, no trade), nothing closes
        self._open: dict[int, ServerConnection] = {}
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def start(self) -> FakeFinnhubStream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeFinnhubStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the test does ---------------------------------------------------------------
    def subscribed(self, connection: int | None = None) -> set[str]:
        """The symbols subscribed on `connection` (default: the latest)."""
        with self.lock:
            number = self.connections if connection is None else connection
            out: set[str] = set()
            for n, kind, symbol in self.subscriptions:
                if n == number:
                    (out.add if kind == "subscribe" else out.discard)(symbol)
            return out

    def trade(self, symbol: str, price: float, t_ms: int | None = None, **extra: Any) -> None:
        """One trade message to every open connection (`t` now by default)."""
        row = {"s": symbol, "p": price, "t": t_ms or int(time.time() * 1000), "v": 100, **extra}
        self.send({"type": "trade", "data": [row]})

    def send(self, message: dict[str, Any] | str) -> None:
        raw = message if isinstance(message, str) else json.dumps(message)

        async def push() -> None:
            for connection in list(self._open.values()):
                with contextlib.suppress(Exception):
                    await connection.send(raw)

        asyncio.run_coroutine_threadsafe(push(), self._loop).result(10)

    def close_all(self) -> None:
        """Close every open connection, as Finnhub does now and then. Returns at once
        (the closing handshake needs the client, which may run in the caller's loop)."""

        async def close() -> None:
            for connection in list(self._open.values()):
                await connection.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop)

    # --- the server -------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await serve(
                self._handle, "127.0.0.1", 0, process_request=self._check_token
            )
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        token = (parse_qs(urlsplit(request.path).query).get("token") or [""])[0]
        with self.lock:
            self.tokens_seen.append(token)
            if token != self.token:
                self.refused += 1
                return connection.respond(HTTPStatus.UNAUTHORIZED, "Invalid API key.\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        with self.lock:
            self.connections += 1
            number = self.connections
        self._open[number] = connection
        pinger = asyncio.create_task(self._ping(connection))
        try:
            async for raw in connection:
                message = json.loads(raw)
                with self.lock:
                    self.subscriptions.append((number, message["type"], message["symbol"]))
        except Exception:
            pass
        finally:
            pinger.cancel()
            self._open.pop(number, None)

    async def _ping(self, connection: ServerConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_every)
            if not self.silent:
                with contextlib.suppress(Exception):
                    await connection.send('{"type":"ping"}')
