"""Finnhub's trade stream: prices as they trade, over one WebSocket, at no REST cost.

`{FINNHUB_STREAM_URL}?token=KEY` (the key is a query parameter, so the URL is never
logged: `redact_url` shows the host only, and the `websockets` logger, which would print
the request line, is held at WARNING). One `{"type":"subscribe","symbol":S}` per symbol,
at most EARNWATCH_STREAM_SYMBOLS of them; then `trade` messages (several trades of
several symbols each; `t` in Unix milliseconds; the same trade may come twice), `ping`
when nothing trades and `error` for a refused request.

What this module promises:

- Each symbol's price is the latest trade by `t`: a trade older than one already taken
  is dropped (`TradeBook`), so a late packet can never move a price back.
- Bursts are coalesced per symbol: while the pipeline evaluates, new trades replace the
  pending one of their symbol; the pending set never holds more than one trade a symbol.
- A connection that sends nothing (no trade, no ping) for EARNWATCH_STREAM_IDLE is dead
  (Finnhub's free stream is known to go quiet without closing): it is closed and
  replaced. Every lost connection, refused handshake and `error` message waits an
  exponential backoff with jitter (`service/backoff.py`) before the next attempt, and
  each distinct cause is logged once.
- Only while `leading()` is true does it connect; REST polling covers every symbol all
  the time, so a stream that is down costs freshness, never an alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from pydantic import SecretStr

from service.backoff import compute_backoff
from service.config import Settings
from service.errors import ConfigError
from service.httpclient import redact_url
from service.providers.finnhub import PROVIDER

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

log = logging.getLogger(__name__)

#: The longest wait between two connection attempts.
BACKOFF_CAP: Final = 120.0
#: How often the reader looks up from the socket: leadership, the symbols, the watchdog.
TICK: Final = 0.5
#: The handshake's deadline.
OPEN_TIMEOUT: Final = 10.0
#: How long a stopping stream lets the evaluation of its last trades finish.
CLOSE_GRACE: Final = 5.0
#: How often the streamed symbols are chosen again (the most urgent, as prices move).
RERANK: Final = 30.0


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    price: float
    time: datetime  # when it traded (UTC), from `t`


@dataclass(frozen=True, slots=True)
class Trades:
    trades: tuple[Trade, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class StreamError:
    message: str


Message = Trades | Ping | StreamError


def parse_message(raw: str | bytes) -> Message | None:
    """One frame as Finnhub sends it, or None when it is not a message we know (malformed
    JSON, an unknown type). Trades lacking a symbol, a positive finite price or a time
    are left out; `c` (the conditions) and `v` are not read."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "ping":
        return Ping()
    if kind == "error":
        return StreamError(" ".join(str(data.get("msg", "")).split())[:200] or "error")
    if kind != "trade" or not isinstance(data.get("data"), list):
        return None
    trades = [t for row in data["data"] if (t := _trade(row)) is not None]
    return Trades(tuple(trades))


def _trade(row: object) -> Trade | None:
    if not isinstance(row, dict):
        return None
    symbol, price, millis = row.get("s"), row.get("p"), row.get("t")
    if not isinstance(symbol, str) or not symbol.strip():
        return None
    if isinstance(price, bool) or not isinstance(price, int | float):
        return None
    if isinstance(millis, bool) or not isinstance(millis, int | float):
        return None
    if not (0 < price < float("inf")) or not (0 < millis < 1e14):
        return None
    return Trade(symbol.strip().upper(), float(price), datetime.fromtimestamp(millis / 1000, UTC))


class TradeBook:
    """The newest trade of each symbol not yet handed on, and the time of the newest
    trade ever taken per symbol (older ones are dropped). Bounded by the symbol count."""

    def __init__(self) -> None:
        self._newest: dict[str, datetime] = {}
        self._pending: dict[str, Trade] = {}
        self._ready = asyncio.Event()

    def add(self, trade: Trade) -> bool:
        """Take `trade` unless a newer one of its symbol was taken. Returns whether taken."""
        newest = self._newest.get(trade.symbol)
        if newest is not None and trade.time < newest:
            return False
        self._newest[trade.symbol] = trade.time
        self._pending[trade.symbol] = trade
        self._ready.set()
        return True

    def take_nowait(self) -> dict[str, Trade]:
        """Every pending trade (one per symbol), emptying the book."""
        pending, self._pending = self._pending, {}
        self._ready.clear()
        return pending

    def wake(self) -> None:
        """Wake a waiting `take()` even with nothing pending (it returns {})."""
        self._ready.set()

    async def take(self) -> dict[str, Trade]:
        """Wait for at least one pending trade, then take them all."""
        await self._ready.wait()
        return self.take_nowait()


class Dropped(Exception):
    """The connection is to be replaced; the message says why (logged once per cause)."""


class FinnhubStream:
    """The connection loop. `run(stop)` until `stop` is set; trades go to `on_trades`
    (one call per batch of coalesced trades, never two at once)."""

    def __init__(
        self,
        *,
        url: str,
        key: SecretStr,
        symbols: Callable[[], Sequence[str]],
        on_trades: Callable[[Mapping[str, Trade]], Awaitable[None]],
        leading: Callable[[], bool],
        idle: float,
        on_state: Callable[[bool], None] = lambda connected: None,
        on_connect: Callable[[], None] = lambda: None,
        on_trade: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
        backoff_base: float = 1.0,
    ) -> None:
        """`on_state(connected)` on every change; `on_connect()` after each subscription
        round (the pipeline polls REST then: the stream says nothing until the next
        trade); `on_trade()` per trade taken."""
        self._url = url
        self._key = key
        self._symbols = symbols
        self._on_trades = on_trades
        self._leading = leading
        self._idle = idle
        self._on_state = on_state
        self._on_connect = on_connect
        self._on_trade = on_trade
        self._rng = rng or random.Random()
        self._backoff_base = backoff_base
        self.book = TradeBook()
        self.connected: bool | None = None  # None: not tried yet
        self.attempts = 0  # failed connections in a row (the backoff's exponent)
        self._logged: set[str] = set()
        self._subscribed: set[str] = set()
        self._closing = False
        logging.getLogger("websockets").setLevel(logging.WARNING)  # it logs the request line

    @property
    def shown_url(self) -> str:
        return redact_url(self._url)

    def _full_url(self) -> str:
        separator = "&" if "?" in self._url else "?"
        return f"{self._url}{separator}token={self._key.get_secret_value()}"

    def _masked(self, text: str) -> str:
        secret = self._key.get_secret_value()
        return text.replace(secret, "***") if secret else text

    def _log_once(self, level: int, cause: str, text: str) -> None:
        if cause in self._logged:
            log.debug("%s", text)
            return
        self._logged.add(cause)
        log.log(level, "%s", text)

    def _set_connected(self, connected: bool) -> None:
        if connected is not self.connected:
            self.connected = connected
            self._on_state(connected)

    # --- the loop -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._closing = False
        consumer = asyncio.create_task(self._consume())
        try:
            while not stop.is_set():
                if not self._leading() or not self._symbols():
                    await _wait(stop, 1.0)
                    continue
                healthy = await self._session(stop)
                self._set_connected(False)
                if stop.is_set():
                    break
                self.attempts = 0 if healthy else self.attempts + 1
                delay = compute_backoff(
                    max(1, self.attempts),
                    retry_after=None,
                    rng=self._rng,
                    base=self._backoff_base,
                    cap=BACKOFF_CAP,
                )
                log.debug("stream: next connection attempt in %.1f s", delay)
                await _wait(stop, delay)
        finally:
            self._set_connected(False)
            # A pass in flight finishes (it may be recording alerts); trades still
            # pending are dropped (REST has them too). Cut short after CLOSE_GRACE.
            self._closing = True
            self.book.wake()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(consumer), CLOSE_GRACE)
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)

    async def _session(self, stop: asyncio.Event) -> bool:
        """One connection, until it drops or `stop`. True when it worked (something
        arrived and no `error` came), so the backoff starts again from its base.
        websockets (23 modules) is imported with the first connection: a standby
        replica, or a daemon whose rules stream no symbol, never connects and does not
        hold it."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

        healthy = False
        try:
            async with connect(
                self._full_url(),
                open_timeout=OPEN_TIMEOUT,
                max_size=2**22,
            ) as ws:
                log.info("stream: connected to %s", self.shown_url)
                self._logged.discard("lost")
                self._subscribed = set()
                await self._sync(ws)
                self._set_connected(True)
                self._on_connect()
                healthy = await self._read(ws, stop)
        except Dropped as exc:
            self._log_once(logging.WARNING, str(exc), f"stream: {exc}; reconnecting")
        except InvalidStatus as exc:
            status = exc.response.status_code
            self._log_once(
                logging.ERROR,
                f"status {status}",
                f"stream: {self.shown_url} refused the connection (HTTP {status}"
                + (": check FINNHUB_API_KEY" if status in (401, 403) else "")
                + "); backing off",
            )
        except ConnectionClosed as exc:
            self._log_once(
                logging.WARNING, "lost", f"stream: connection lost ({self._masked(str(exc))})"
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = self._masked(str(exc)) or type(exc).__name__
            self._log_once(
                logging.WARNING,
                f"connect {type(exc).__name__}",
                f"stream: cannot connect to {self.shown_url}: {reason}; backing off",
            )
        return healthy

    async def _read(self, ws: ClientConnection, stop: asyncio.Event) -> bool:
        healthy = False
        last = synced = time.monotonic()
        while not stop.is_set():
            if not self._leading():
                log.info("stream: no longer leading; closing")
                return True
            now = time.monotonic()
            if now - last > self._idle:
                raise Dropped(f"nothing received for {self._idle:g} s")
            if now - synced >= TICK:
                synced = now
                await self._sync(ws)
            try:
                raw = await asyncio.wait_for(ws.recv(), TICK)
            except TimeoutError:
                continue
            last = time.monotonic()
            message = parse_message(raw)
            if message is None:
                self._log_once(logging.WARNING, "malformed", "stream: ignored a malformed frame")
                continue
            if isinstance(message, StreamError):
                raise Dropped(f"the server sent an error: {self._masked(message.message)}")
            healthy = True
            if isinstance(message, Trades):
                for trade in message.trades:
                    if trade.symbol in self._subscribed and self.book.add(trade):
                        self._on_trade()
        return healthy

    async def _sync(self, ws: ClientConnection) -> None:
        """Subscribe to the symbols wanted and not subscribed, unsubscribe the others."""
        wanted = set(self._symbols())
        for symbol in sorted(self._subscribed - wanted):
            await ws.send(json.dumps({"type": "unsubscribe", "symbol": symbol}))
            self._subscribed.discard(symbol)
        for symbol in sorted(wanted - self._subscribed):
            await ws.send(json.dumps({"type": "subscribe", "symbol": symbol}))
            self._subscribed.add(symbol)

    async def _consume(self) -> None:
        while not self._closing:
            trades = await self.book.take()
            if self._closing:
                return
            try:
                await self._on_trades(trades)
            except Exception:  # a failed pass must not end the stream; logged, go on
                log.exception("stream: evaluating %d trade(s) failed", len(trades))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def build_stream(
    settings: Settings,
    *,
    symbols: Callable[[], Sequence[str]],
    on_trades: Callable[[Mapping[str, Trade]], Awaitable[None]],
    leading: Callable[[], bool],
    on_state: Callable[[bool], None],
    on_connect: Callable[[], None],
    on_trade: Callable[[], None],
) -> FinnhubStream | None:
    """The stream EARNWATCH_STREAM asks for, or None (off, or no provider streams).
    Raises ConfigError when the stream is asked for without FINNHUB_API_KEY."""
    if settings.stream_provider != PROVIDER.name or PROVIDER.stream_url is None:
        return None
    url = getattr(settings, PROVIDER.stream_url.field)
    if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"{PROVIDER.stream_url.env}: expected a ws:// or wss:// URL")
    return FinnhubStream(
        url=url,
        key=PROVIDER.api_key(settings),
        symbols=symbols,
        on_trades=on_trades,
        leading=leading,
        idle=settings.stream_idle.total_seconds(),
        on_state=on_state,
        on_connect=on_connect,
        on_trade=on_trade,
    )


class StreamedSymbols:
    """The first EARNWATCH_STREAM_SYMBOLS of the watched symbols, most urgent first (the
    rest are polled only). `watched` runs again only when `version()` changes (the rule
    set in force, and a time bucket of RERANK seconds), so asking twice a second costs
    nothing."""

    def __init__(
        self, watched: Callable[[], Sequence[str]], limit: int, version: Callable[[], object]
    ) -> None:
        self._watched = watched
        self._limit = max(0, limit)
        self._version = version
        self._seen: object = None
        self._chosen: list[str] = []
        self._warned = False

    def __call__(self) -> list[str]:
        version = self._version()
        if version is self._seen or version == self._seen:  # a tuple compares by identity
            return self._chosen
        self._seen = version
        watched = self._watched()
        self._chosen = list(watched[: self._limit])
        if len(watched) > self._limit and not self._warned:
            self._warned = True
            log.warning(
                "stream: %d symbols read a price and EARNWATCH_STREAM_SYMBOLS is %d: the "
                "%d most urgent stream, the others are polled over REST only",
                len(watched),
                self._limit,
                self._limit,
            )
        return self._chosen
