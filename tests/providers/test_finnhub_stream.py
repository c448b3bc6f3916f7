"""Finnhub's trade stream: message parsing, coalescing, the watchdog, reconnection with
backoff, and no key in any log record (service/providers/finnhub_stream.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from service.providers.finnhub_stream import (
    FinnhubStream,
    Ping,
    StreamedSymbols,
    StreamError,
    Trade,
    TradeBook,
    Trades,
    parse_message,
)
from tests.fakes.finnhub_stream import FakeFinnhubStream

KEY = "test-finnhub-key"
T0 = 1770217200123


def at(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


# --- parsing -----------------------------------------------------------------------------
def test_a_trade_message_gives_each_trade_with_its_time_in_milliseconds() -> None:
    raw = (
        '{"type":"trade","data":[{"s":"LUMN","p":7.61,"t":1770217200123,"v":100,"c":["1"]},'
        '{"s":"AAPL","p":274.7,"t":1770217200200,"v":10}]}'
    )
    assert parse_message(raw) == Trades(
        (Trade("LUMN", 7.61, at(T0)), Trade("AAPL", 274.7, at(1770217200200)))
    )


def test_ping_and_error_messages() -> None:
    assert parse_message('{"type":"ping"}') == Ping()
    assert parse_message(b'{"type":"error","msg":"Subscribing to too many symbols"}') == (
        StreamError("Subscribing to too many symbols")
    )


@pytest.mark.parametrize(
    "raw",
    ["not json", "[1,2]", '{"type":"news"}', '{"type":"trade","data":{}}', "\xff", ""],
)
def test_a_malformed_frame_is_none(raw: str) -> None:
    assert parse_message(raw) is None


def test_malformed_trades_are_left_out_of_a_message() -> None:
    rows = [
        {"p": 7.6, "t": T0},  # no symbol
        {"s": "LUMN", "p": "7.6", "t": T0},
        {"s": "LUMN", "p": 0, "t": T0},
        {"s": "LUMN", "p": float("nan"), "t": T0},
        {"s": "LUMN", "p": True, "t": T0},
        {"s": "LUMN", "p": 7.6},
        "row",
        {"s": " lumn ", "p": 7.6, "t": T0},
    ]
    import json

    message = parse_message(json.dumps({"type": "trade", "data": rows}))
    assert message == Trades((Trade("LUMN", 7.6, at(T0)),))


# --- coalescing --------------------------------------------------------------------------
def test_a_burst_of_one_symbol_is_one_pending_trade_with_the_newest_price() -> None:
    book = TradeBook()
    for i in range(1000):
        book.add(Trade("LUMN", 7.0 + i / 1000, at(T0 + i)))
    book.add(Trade("AAPL", 274.7, at(T0)))
    assert book.take_nowait() == {
        "LUMN": Trade("LUMN", 7.999, at(T0 + 999)),
        "AAPL": Trade("AAPL", 274.7, at(T0)),
    }
    assert book.take_nowait() == {}


def test_a_late_older_trade_is_dropped_even_after_the_newer_one_was_taken() -> None:
    book = TradeBook()
    assert book.add(Trade("LUMN", 7.61, at(T0 + 10)))
    book.take_nowait()
    assert not book.add(Trade("LUMN", 9.99, at(T0)))
    assert book.take_nowait() == {}
    assert book.add(Trade("LUMN", 7.62, at(T0 + 10)))  # same time: several trades a ms


def test_the_streamed_symbols_are_capped_and_computed_once_per_rule_set() -> None:
    calls = []
    version = object()

    def watched() -> list[str]:
        calls.append(1)
        return ["A", "B", "C"]

    chosen = StreamedSymbols(watched, 2, lambda: version)
    assert chosen() == ["A", "B"]
    assert chosen() == ["A", "B"]
    assert len(calls) == 1


# --- the connection loop against a fake server --------------------------------------------
class Run:
    """A FinnhubStream running against `fake` in this test's loop."""

    def __init__(self, fake: FakeFinnhubStream, *, key: str = KEY, idle: float = 5.0) -> None:
        self.batches: list[dict[str, Trade]] = []
        self.states: list[bool] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.symbols = ["AAPL", "LUMN"]

        async def on_trades(trades: Mapping[str, Trade]) -> None:
            await self.gate.wait()
            self.batches.append(dict(trades))

        self.stream = FinnhubStream(
            url=fake.url,
            key=SecretStr(key),
            symbols=lambda: self.symbols,
            on_trades=on_trades,
            leading=lambda: True,
            idle=idle,
            on_state=self.states.append,
            backoff_base=0.05,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Run:
        self.task = asyncio.create_task(self.stream.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


async def until(condition: object, timeout: float = 5.0) -> None:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


@pytest.mark.anyio
async def test_it_subscribes_each_symbol_and_hands_on_trades() -> None:
    with FakeFinnhubStream() as fake:
        async with Run(fake) as run:
            await until(lambda: fake.subscribed() == {"AAPL", "LUMN"})
            await until(lambda: run.states == [True])
            fake.trade("LUMN", 7.61, T0)
            fake.trade("MSFT", 400.0, T0)  # not subscribed: ignored
            await until(lambda: run.batches)
            assert run.batches == [{"LUMN": Trade("LUMN", 7.61, at(T0))}]
            run.symbols = ["LUMN"]
            await until(lambda: fake.subscribed() == {"LUMN"})
    assert ("unsubscribe", "AAPL") in [(k, s) for _n, k, s in fake.subscriptions]


@pytest.mark.anyio
async def test_trades_arriving_during_an_evaluation_are_coalesced_into_one_batch() -> None:
    with FakeFinnhubStream() as fake:
        async with Run(fake) as run:
            await until(lambda: fake.subscribed() == {"AAPL", "LUMN"})
            run.gate.clear()  # the pipeline is busy with the first trade
            fake.trade("LUMN", 7.00, T0)
            await until(lambda: not run.stream.book._ready.is_set())  # taken, waiting
            for i in range(1, 200):
                fake.trade("LUMN", 7.00 + i / 100, T0 + i)
            fake.trade("LUMN", 1.00, T0 - 5)  # late and older: dropped
            await asyncio.sleep(0.3)
            run.gate.set()
            await until(lambda: len(run.batches) == 2)
            await asyncio.sleep(0.2)
    assert run.batches == [
        {"LUMN": Trade("LUMN", 7.00, at(T0))},
        {"LUMN": Trade("LUMN", 8.99, at(T0 + 199))},
    ]


@pytest.mark.anyio
async def test_a_closed_or_silent_connection_is_replaced_and_resubscribed() -> None:
    with FakeFinnhubStream(ping_every=0.1) as fake:
        async with Run(fake, idle=0.6) as run:
            await until(lambda: fake.subscribed(1) == {"AAPL", "LUMN"})
            fake.close_all()
            await until(lambda: fake.subscribed(2) == {"AAPL", "LUMN"})
            fake.silent = True  # no ping, no trade, no close
            silent_at = time.monotonic()
            await until(lambda: fake.connections >= 3)
            assert time.monotonic() - silent_at >= 0.6  # the watchdog waited its window
            fake.silent = False
            await until(lambda: fake.subscribed(3) == {"AAPL", "LUMN"})
            fake.trade("AAPL", 274.7, T0)
            await until(lambda: run.batches)
    assert run.states[:3] == [True, False, True]


@pytest.mark.anyio
async def test_a_refused_key_is_logged_once_backed_off_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-key-0123456789"
    with FakeFinnhubStream() as fake:
        async with Run(fake, key=secret) as run:
            await until(lambda: fake.refused >= 4, 10)
            assert run.stream.attempts >= 3  # each wait longer than the last (backoff)
    refusals = [
        r
        for r in caplog.records
        if "refused the connection" in r.getMessage() and r.levelno > logging.DEBUG
    ]
    assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR
    assert "HTTP 401" in refusals[0].getMessage()
    assert fake.tokens_seen[0] == secret  # it was sent...
    for record in caplog.records:  # ...and never logged, by us or by websockets
        assert secret not in record.getMessage()
        assert secret not in str(record.args)
    assert run.states == [False]


@pytest.mark.anyio
async def test_an_error_message_is_logged_once_and_backed_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeFinnhubStream() as fake:
        async with Run(fake) as run:
            for connection in range(1, 4):
                await until(lambda c=connection: fake.subscribed(c) == {"AAPL", "LUMN"})  # type: ignore[misc]
                fake.send({"type": "error", "msg": "Subscribing to too many symbols"})
            await until(lambda: run.stream.attempts >= 3)
    errors = [r for r in caplog.records if "too many symbols" in r.getMessage()]
    assert [r.levelno for r in errors].count(logging.WARNING) == 1
    for record in caplog.records:
        assert KEY not in record.getMessage()


@pytest.mark.anyio
async def test_a_refused_connection_backs_off() -> None:
    with FakeFinnhubStream() as fake:
        url = fake.url
    stream = FinnhubStream(
        url=url,  # nothing listens there any more
        key=SecretStr(KEY),
        symbols=lambda: ["LUMN"],
        on_trades=lambda trades: asyncio.sleep(0),
        leading=lambda: True,
        idle=5,
        backoff_base=0.05,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    await asyncio.sleep(0.6)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert 2 <= stream.attempts <= 5  # 0.05, 0.1, 0.2, 0.4 s (±50 %): not a tight loop


@pytest.mark.anyio
async def test_only_the_leader_streams() -> None:
    leading = False
    with FakeFinnhubStream() as fake:
        run = Run(fake)
        run.stream._leading = lambda: leading
        async with run:
            await asyncio.sleep(0.5)
            assert fake.connections == 0
            leading = True
            await until(lambda: fake.subscribed(1) == {"AAPL", "LUMN"})
            leading = False  # leadership lost: the connection is closed
            await until(lambda: run.states == [True, False])
            await asyncio.sleep(0.3)
            assert fake.connections == 1


@pytest.mark.anyio
async def test_stopping_lets_the_pass_in_flight_finish() -> None:
    with FakeFinnhubStream() as fake:
        run = Run(fake)
        async with run:
            await until(lambda: fake.subscribed() == {"AAPL", "LUMN"})
            run.gate.clear()  # the pass of this trade is still recording when stop comes
            fake.trade("LUMN", 7.61, T0)
            await until(lambda: not run.stream.book._ready.is_set())
            run.stop.set()
            await asyncio.sleep(0.2)
            run.gate.set()
    assert run.batches == [{"LUMN": Trade("LUMN", 7.61, at(T0))}]
