"""Benchmark: the store's part of a delivery alone, without HTTP: record, claim, finish.

What `bench/delivery.py` costs minus the sends and the worker: `Store.record()` of N
alerts (one webhook delivery each, `render`ed, in batches of `--batch` per transaction),
then `Store.claim()` of `--claim` deliveries at a time, each claim's deliveries finished
`delivered` with `Store.finish_many()` in groups of `--group` (the worker's group commit),
until all are delivered. Every call is one durable transaction (SQLite `synchronous=FULL`),
on SQLite in a temporary folder, or PostgreSQL with `--pg` / `--database-url`.

Printed: the CPU time (`time.process_time`, this process: the store's Python and the
driver) and the wall time per delivery of each of the three, and in all.

    .venv/bin/python bench/outbox_store.py [--alerts 2000] [--batch 50] [--claim 16]
        [--group 16] [--pg | --database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.store import AttemptRecord, Finished, Store, open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delivery import alerts_for  # the burst bench's alerts, so both measure the same rows


class Meter:
    """CPU and wall seconds spent inside `with meter:` blocks."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0

    def __enter__(self) -> None:
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self.cpu += time.process_time() - self._cpu
        self.wall += time.perf_counter() - self._wall


def run(args: argparse.Namespace, url: str) -> None:
    store: Store = open_store(url)
    meters = {"record": Meter(), "claim": Meter(), "finish": Meter()}
    transactions = {"record": 0, "claim": 0, "finish": 0}
    try:
        for first in range(0, args.alerts, args.batch):
            now = datetime.now(UTC)
            batch = alerts_for(min(args.batch, args.alerts - first), first, now, "bench-store")
            with meters["record"]:
                store.record(batch, {}, now)
            transactions["record"] += 1
        delivered = 0
        while True:
            with meters["claim"]:
                claimed = store.claim(datetime.now(UTC), args.claim, timedelta(minutes=2))
            transactions["claim"] += 1
            if not claimed:
                break
            for start in range(0, len(claimed), args.group):
                finished_at = datetime.now(UTC)
                items = [
                    Finished(
                        d.id,
                        AttemptRecord(d.attempts, finished_at, finished_at, "ok", 200),
                        "delivered",
                    )
                    for d in claimed[start : start + args.group]
                ]
                with meters["finish"]:
                    moved = store.finish_many(items)
                transactions["finish"] += 1
                delivered += sum(moved)
    finally:
        store.close()
    n = max(1, delivered)
    rows = [
        ("database", store.backend),
        (
            "deliveries / batch / claim / group",
            f"{delivered:,} / {args.batch} / {args.claim} / {args.group}",
        ),
    ]
    for name, meter in meters.items():
        rows.append(
            (
                f"{name} ({transactions[name]:,} transactions)",
                f"{meter.cpu / n * 1000:.3f} ms CPU, {meter.wall / n * 1000:.3f} ms wall"
                " per delivery",
            )
        )
    cpu = sum(m.cpu for m in meters.values())
    wall = sum(m.wall for m in meters.values())
    rows.append(
        ("store in all", f"{cpu / n * 1000:.3f} ms CPU, {wall / n * 1000:.3f} ms wall per delivery")
    )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if delivered < args.alerts:
        sys.exit(f"delivered {delivered} of {args.alerts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50, help="alerts per record transaction")
    parser.add_argument("--claim", type=int, default=16, help="deliveries per claim")
    parser.add_argument("--group", type=int, default=16, help="attempts per finish_many")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument(
        "--pg", action="store_true", help="use $EARNWATCH_TEST_PG_URL as --database-url"
    )
    args = parser.parse_args()
    if min(args.alerts, args.batch, args.claim, args.group) < 1:
        parser.error("--alerts, --batch, --claim and --group must be at least 1")
    url = args.database_url
    if url is None and args.pg:
        url = os.environ.get("EARNWATCH_TEST_PG_URL") or parser.error(
            "--pg needs EARNWATCH_TEST_PG_URL"
        )
    with tempfile.TemporaryDirectory(prefix="earnwatch-bench-") as folder:
        run(args, url or f"sqlite:///{Path(folder) / 'earnwatch.db'}")


if __name__ == "__main__":
    main()
