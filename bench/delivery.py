"""Benchmark: commit N alerts to the outbox and deliver them to a local webhook receiver.

The real pieces: a store (SQLite in a temporary folder, or PostgreSQL with
`--database-url`), `Store.record()` with `render` (one webhook delivery per alert), the
real `WebhookNotifier` (signed, through the SSRF guard with private targets allowed) and
`DeliveryWorker.run()`, woken after each commit as the pipeline wakes it. Alerts are
committed in batches of `--batch` per transaction while the worker runs. The receiver is
another process, as a real one is: a small asyncio HTTP/1.1 server on 127.0.0.1 (no import
from tests/) that answers 200 on a kept-alive connection and records the arrival time
(`time.monotonic`, CLOCK_MONOTONIC: one clock for every process of the machine) of each
`webhook-id`, sent back to the bench over a pipe.

Latency is from the moment `record()` returned (the batch is committed) to the moment the
receiver read the request. Duplicates are raw receipts minus distinct webhook-ids.
The store's claim and record transactions are counted (each is one durable commit), and
the CPU time per delivery of this process (the worker, the store, the commits: not the
receiver's, which runs elsewhere) is printed: on a shared machine it says more than the
wall clock does. `--receiver-cpu` also prints the receiver's.

    .venv/bin/python bench/delivery.py [--alerts 1000] [--concurrency 16] [--batch 50]
        [--pause 0 | --rate R] [--per-host 8] [--database-url postgresql+psycopg://...]
        [--receiver-cpu]

The issue's two figures: deliveries per second at a burst (the defaults) and the p99
commit -> receipt at a paced 200 alerts a second (`--rate 200 --batch 10`: a batch of 10
every 50 ms, below capacity).

`--database-url` defaults to $EARNWATCH_TEST_PG_URL when `--pg` is given, else SQLite.
The bench creates its tables with `open_store` (migrations) and leaves them in place.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from service import delivery
from service.clock import SystemClock
from service.config import load_settings
from service.delivery import DeliveryWorker
from service.engine import Alert
from service.errors import DeliveryError
from service.notify import WebhookConfig, build_notifiers
from service.notify.base import ChannelConfig, Message, Notifier
from service.notify.render import render
from service.notify.webhook import WebhookNotifier, payload, sign, signing_key, webhook_id
from service.store import NewAlert, Store, open_store

#: One receipt: (webhook-id, alert id, monotonic time the request was read in full).
Receipt = tuple[str, str, float]


class _Receive(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: read each request (headers, then
    Content-Length bytes), note its receipt, answer 200."""

    REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, seen: list[Receipt]) -> None:
        self.seen = seen
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")[1:]
            headers = {}
            for line in head:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            at = time.monotonic()
            alert_id = str(json.loads(body).get("alert_id", "")) if body else ""
            self.seen.append((headers.get("webhook-id", ""), alert_id, at))
            self.transport.write(self.REPLY)
            if headers.get("connection", "").lower() == "close":
                self.transport.close()
                self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _receiver_main(pipe: Connection) -> None:
    """The receiver process: serve until told to stop; on "receipts", send back the
    receipts since the last ask; at "stop", send back this process's CPU time."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        seen: list[Receipt] = []
        server = await loop.create_server(lambda: _Receive(seen), "127.0.0.1", 0, backlog=1024)
        pipe.send(server.sockets[0].getsockname()[1])
        stopped = asyncio.Event()
        sent = 0

        def on_command() -> None:
            nonlocal sent
            command = pipe.recv()
            if command == "receipts":
                pipe.send(seen[sent:])
                sent = len(seen)
            else:
                stopped.set()

        loop.add_reader(pipe.fileno(), on_command)
        await stopped.wait()
        loop.remove_reader(pipe.fileno())
        server.close()
        pipe.send(time.process_time())

    asyncio.run(serve())


@dataclass
class Receiver:
    """The receiver process, seen from the bench: its port, and what it received."""

    process: Any
    pipe: Connection
    port: int
    seen: list[Receipt] = field(default_factory=list)
    cpu_s: float = 0.0

    @classmethod
    def start(cls) -> Receiver:
        """Fork the receiver (before the bench's event loop and threads exist)."""
        ours, theirs = multiprocessing.Pipe()
        process = multiprocessing.get_context("fork").Process(
            target=_receiver_main, args=(theirs,), daemon=True
        )
        process.start()
        theirs.close()
        return cls(process, ours, int(ours.recv()))

    async def _ask(self, command: str) -> Any:
        loop = asyncio.get_running_loop()
        self.pipe.send(command)
        ready = loop.create_future()
        loop.add_reader(self.pipe.fileno(), lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(self.pipe.fileno())
        return self.pipe.recv()

    async def update(self) -> list[Receipt]:
        """The receipts that came since the last ask (all of them are kept in `seen`)."""
        new: list[Receipt] = await self._ask("receipts")
        self.seen.extend(new)
        return new

    async def stop(self) -> None:
        await self.update()
        self.cpu_s = float(await self._ask("stop"))
        self.process.join(10)


class LightWebhook(WebhookNotifier):
    """`--light-client`: the webhook's own body, headers and signature, POSTed over plain
    asyncio streams kept alive, without httpx (nor its SSRF guard): what the worker and
    the store cost apart from the HTTP client's ~2 ms, i.e. where a light client puts us.
    Only for this bench; a reply other than 2xx is a retryable DeliveryError."""

    def __init__(self, deadline: float) -> None:
        super().__init__(None, deadline=deadline)  # type: ignore[arg-type]
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        assert isinstance(config, WebhookConfig)
        body = payload(message)
        msg_id = webhook_id(delivery_id)
        timestamp = str(int(time.time()))
        url = urlsplit(config.url.get_secret_value())
        lines = [
            f"POST {url.path or '/'} HTTP/1.1",
            f"host: {url.netloc}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            f"webhook-id: {msg_id}",
            f"webhook-timestamp: {timestamp}",
        ]
        if config.secret is not None:
            key = signing_key(config.secret.get_secret_value())
            lines.append(f"webhook-signature: {sign(key, msg_id, timestamp, body)}")
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        self._idle.append((reader, writer))  # only once the reply is read in full
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}", permanent=False)

    async def aclose(self) -> None:
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()


def alerts_for(batch: int, first: int, now: datetime, prefix: str = "bench") -> list[NewAlert]:
    """`batch` miss alerts numbered from `first`, one webhook delivery each; `prefix`
    keeps the dedup keys of two benches apart in one database."""
    out: list[NewAlert] = []
    for i in range(first, first + batch):
        symbol = f"S{i % 500:03d}"
        alert = Alert(
            rule=f"bench-miss-{i % 50}",
            symbol=symbol,
            dedup_key=f"{prefix}:{now.isoformat()}:{i}",
            fired_at=now,
            text=f"{symbol} missed: EPS -0.30 vs -0.21 (alert {i})",
            channels=("hook",),
            values={"eps_actual": -0.30, "eps_estimate": -0.21, "price": 8.46},
            report_key="2025Q4",
        )
        out.append((alert, render, [("hook", "webhook")]))
    return out


async def run_bench(args: argparse.Namespace, url: str, receiver: Receiver) -> dict[str, Any]:
    store: Store = await asyncio.to_thread(open_store, url)
    settings = load_settings(env_file=None, allow_private_targets=True)
    notifiers: Mapping[str, Notifier] = build_notifiers(settings)
    if args.light_client:
        for notifier in notifiers.values():
            await notifier.aclose()
        notifiers = {"webhook": LightWebhook(notifiers["webhook"].deadline)}
    hook_url = f"http://127.0.0.1:{receiver.port}/hooks/bench-s3cr3t"
    channels: Mapping[str, ChannelConfig] = {
        "hook": WebhookConfig(
            url=SecretStr(hook_url), secret=SecretStr("whsec_YmVuY2gtc2lnbmluZy1rZXk=")
        )
    }
    transactions = count_transactions(store)
    worker = DeliveryWorker(
        store,
        notifiers,
        lambda: channels,
        clock=SystemClock(),
        rng=random.Random(7),
        concurrency=args.concurrency,
        per_host=args.per_host,
        **({} if args.record_wait is None else {"record_wait": args.record_wait / 1000}),
    )
    committed: dict[str, float] = {}
    commit_s = 0.0
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    started = time.monotonic()
    cpu_started = time.process_time()
    pause = args.batch / args.rate if args.rate else args.pause
    try:
        for first in range(0, args.alerts, args.batch):
            now = datetime.now(UTC)
            batch = alerts_for(min(args.batch, args.alerts - first), first, now)
            ids = await asyncio.to_thread(store.record, batch, {}, now)
            at = time.monotonic()
            committed.update((alert_id, at) for alert_id in ids)
            commit_s = at - started
            worker.wake()
            if pause:
                await asyncio.sleep(max(0.0, started + pause * (first // args.batch + 1) - at))
        deadline = time.monotonic() + args.timeout
        got: set[str] = set()  # alert ids received
        while time.monotonic() < deadline:
            got.update(a for _w, a, _t in await receiver.update())
            if committed.keys() <= got:
                break
            await asyncio.sleep(0.02)
        ours = set(committed)
        while True:  # the last `finish()` transactions land just after the last receipt
            entries = await asyncio.to_thread(store.history, len(committed), None, None)
            mine = [d for e in entries if e.alert_id in ours for d in e.deliveries]
            if all(d.status in ("delivered", "dead") for d in mine):
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        total_s = time.monotonic() - started
        cpu_s = time.process_time() - cpu_started
        attempts = [d.attempts for d in mine]
        statuses = [d.status for d in mine]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        for notifier in notifiers.values():
            await notifier.aclose()
        await asyncio.to_thread(store.close)
        await receiver.stop()
    seen = [s for s in receiver.seen if s[1] in committed]
    first_arrival: dict[str, float] = {}
    for _wid, alert_id, at in seen:
        first_arrival.setdefault(alert_id, at)
    latencies = sorted(first_arrival[a] - committed[a] for a in first_arrival)
    distinct_ids = {wid for wid, _a, _t in seen}
    last = max(first_arrival.values(), default=started)
    return {
        "backend": store.backend,
        "alerts": len(committed),
        "received": len(first_arrival),
        "raw": len(seen),
        "duplicates": len(seen) - len(distinct_ids),
        "commit_s": commit_s,
        "deliver_s": last - started,
        "total_s": total_s,
        "latencies": latencies,
        "attempts": attempts,
        "delivered": statuses.count("delivered"),
        "cpu_s": cpu_s,
        "receiver_cpu_s": receiver.cpu_s,
        "claims": transactions["claim"],
        "records": transactions["record"],
    }


def count_transactions(store: Store) -> dict[str, int]:
    """Count the store's claim and record (finish) transactions, by wrapping its methods."""
    counts = {"claim": 0, "record": 0}
    lock = threading.Lock()

    def counted(name: str, kind: str) -> None:
        method = getattr(store, name, None)
        if method is None:  # an older store without group commit
            return

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                counts[kind] += 1
            return method(*args, **kwargs)

        setattr(store, name, wrapper)

    counted("claim", "claim")
    counted("claim_next", "claim")
    counted("finish", "record")
    counted("finish_many", "record")
    return counts


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    lat = r["latencies"]
    attempts = r["attempts"]
    rows = [
        ("database", r["backend"]),
        (
            "alerts / batch / concurrency",
            f"{r['alerts']:,} / {args.batch} per transaction / {args.concurrency}",
        ),
        ("paced at", f"{args.rate:g} alerts/s" if args.rate else f"pause {args.pause:g} s"),
        ("received (distinct alerts)", f"{r['received']:,} of {r['alerts']:,}"),
        ("delivered in the store", f"{r['delivered']:,}"),
        ("time to commit all batches", f"{r['commit_s']:.2f} s"),
        ("time to the last receipt", f"{r['deliver_s']:.2f} s"),
        ("deliveries per second", f"{r['received'] / r['deliver_s']:,.0f}"),
        (
            "commit -> receipt p50 / p90",
            f"{pct(lat, 50) * 1000:,.0f} ms / {pct(lat, 90) * 1000:,.0f} ms",
        ),
        (
            "commit -> receipt p99 / max",
            f"{pct(lat, 99) * 1000:,.0f} ms / {(lat[-1] if lat else float('nan')) * 1000:,.0f} ms",
        ),
        (
            "attempts per delivery",
            f"mean {statistics.fmean(attempts):.2f}, max {max(attempts)}" if attempts else "-",
        ),
        ("duplicates (raw - distinct ids)", f"{r['duplicates']}"),
        (
            "claim / record transactions",
            f"{r['claims']:,} / {r['records']:,} "
            f"({(r['claims'] + r['records']) / max(1, r['alerts']):.2f} per delivery)",
        ),
        ("CPU time per delivery", f"{r['cpu_s'] / max(1, r['alerts']) * 1000:.2f} ms (process)"),
    ]
    if args.receiver_cpu:
        per = r["receiver_cpu_s"] / max(1, r["raw"]) * 1000
        rows.append(("receiver CPU per request", f"{per:.2f} ms (its own process)"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=getattr(delivery, "DEFAULT_CONCURRENCY", 8),
        help="worker sends in flight (default: the worker's)",
    )
    parser.add_argument("--batch", type=int, default=50, help="alerts per transaction")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between batches")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="alerts per second (a batch every batch/rate s)"
    )
    parser.add_argument(
        "--per-host",
        type=int,
        default=getattr(delivery, "DEFAULT_PER_HOST", 4),
        help="sends in flight per host (default: the worker's)",
    )
    parser.add_argument(
        "--record-wait",
        type=float,
        default=None,
        help="ms a group commit waits for company (default: the worker's)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument(
        "--pg", action="store_true", help="use $EARNWATCH_TEST_PG_URL as --database-url"
    )
    parser.add_argument(
        "--light-client",
        action="store_true",
        help="POST over plain asyncio streams, not httpx (the worker's own cost)",
    )
    parser.add_argument(
        "--receiver-cpu", action="store_true", help="also print the receiver's CPU time"
    )
    args = parser.parse_args()
    if args.alerts < 1 or args.batch < 1 or args.concurrency < 1 or args.per_host < 1:
        parser.error("--alerts, --batch, --concurrency and --per-host must be at least 1")
    if args.rate < 0 or (args.rate and args.pause):
        parser.error("--rate must be positive, and not given with --pause")
    url = args.database_url
    if url is None and args.pg:
        url = os.environ.get("EARNWATCH_TEST_PG_URL") or parser.error(
            "--pg needs EARNWATCH_TEST_PG_URL"
        )
    with tempfile.TemporaryDirectory(prefix="earnwatch-bench-") as folder:
        if url is None:
            url = f"sqlite:///{Path(folder) / 'earnwatch.db'}"
        receiver = Receiver.start()
        try:
            result = asyncio.run(run_bench(args, url, receiver))
        finally:
            if receiver.process.is_alive():
                receiver.process.terminate()
    report(args, result)
    if result["received"] != result["alerts"] or result["duplicates"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
