"""Benchmark: load and evaluate 100,000 rules over 10,000 symbols.

Prints the rule file load time and the peak memory of the load, the load time of a
1,000-rule file, a full evaluation pass (first and steady), an incremental pass where 1%
of the symbols have new data, and how many rules the idle time-only pass evaluates per
10 s tick (no new data: only the rules whose result moves with the clock alone), and the
mean of 30 steady passes in a row with the garbage collector on, as a daemon runs them
(as loaded, then with the heap frozen as the daemon's rule file load leaves it).

    .venv/bin/python bench/engine.py [--rules 100000] [--symbols 10000]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import random
import resource
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.engine import RuleState, evaluate
from service.market import EarningsEvent, Quote, ReportTime, Snapshot
from service.notify import CHANNEL_CONFIGS
from service.rules import RuleSet, load_rules

if "wakes" in inspect.signature(evaluate).parameters:  # issue #16; a "before" tree has none
    from service.wakes import Wakes
else:  # pragma: no cover
    Wakes = None  # type: ignore[assignment,misc]

CONDITIONS = [
    "price > {t}",
    "price < {t} and change_pct < -5",
    "reported and eps_actual < eps_estimate",
    "not reported and hours_to_earnings <= 24",
    "reported and move_since_report_pct <= -8",
    "abs(change_pct) >= 7 or price > target_median",
]
TICK = timedelta(seconds=10)
IDLE_TICKS = 90  # a quarter of an hour of idle ticks
DAEMON_PASSES = 30  # steady passes in a row with the collector on, as a daemon runs them


def rule_file(rules: int, symbols: list[str], rng: random.Random) -> str:
    lines = ["version: 1", "rules:"]
    for i in range(rules):
        when = rng.choice(CONDITIONS).format(t=round(rng.uniform(5, 500), 2))
        lines += [
            f"  - name: r{i}",
            f"    symbols: [{symbols[i % len(symbols)]}]",
            f"    when: {when}",
        ]
    return "\n".join(lines) + "\n"


def snapshots(symbols: list[str], rng: random.Random) -> dict[str, Snapshot]:
    out = {}
    for s in symbols:
        price = rng.uniform(5, 500)
        event = EarningsEvent(
            s,
            date(2026, 2, rng.randint(2, 6)),
            ReportTime.AMC,
            2025,
            4,
            0.5,
            rng.choice([None, 0.4, 0.6]),
        )
        out[s] = Snapshot(
            s,
            quote=Quote(s, price, prev_close=price * rng.uniform(0.9, 1.1)),
            events=(event,),
            report_prices={"2025Q4": price},
        )
    return out


def load(text: str) -> RuleSet:
    return load_rules(text, source="bench.yaml", env={}, channel_configs=CHANNEL_CONFIGS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(7)
    symbols = [f"S{i:05d}" for i in range(args.symbols)]
    text = rule_file(args.rules, symbols, rng)
    small = rule_file(1_000, symbols, random.Random(8))

    before_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started, cpu = time.perf_counter(), time.process_time()
    ruleset = load(text)
    load_s, load_cpu = time.perf_counter() - started, time.process_time() - cpu
    load_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    small_s, small_cpu = [], []
    for _ in range(7):
        started, cpu = time.perf_counter(), time.process_time()
        load(small)
        small_s.append(time.perf_counter() - started)
        small_cpu.append(time.process_time() - cpu)

    snaps = snapshots(symbols, rng)
    now = datetime(2026, 2, 3, 22, tzinfo=UTC)
    wakes: Any = Wakes() if Wakes is not None else None

    def run(at: datetime, changed: set[str] | None) -> Any:
        if wakes is None:
            return evaluate(ruleset, snaps, states, at, changed=changed)
        result = evaluate(ruleset, snaps, states, at, changed=changed, wakes=wakes)
        wakes.update(ruleset, result.wakes)
        return result

    states: dict[tuple[str, str], RuleState] = {}
    started = time.perf_counter()
    first = run(now, None)
    full_s = time.perf_counter() - started
    states.update(first.states)

    changed = set(rng.sample(symbols, max(1, len(symbols) // 100)))
    later = now + timedelta(minutes=1)
    started = time.perf_counter()
    incremental = run(later, changed)
    inc_s = time.perf_counter() - started
    states.update(incremental.states)

    steady, steady_cpu = [], []
    for _ in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        again = run(later, None)
        steady.append(time.perf_counter() - started)
        steady_cpu.append(time.process_time() - cpu)
        states.update(again.states)
    steady_s = min(steady)

    idle = []
    tick = later
    started = time.perf_counter()
    for _ in range(IDLE_TICKS):
        tick += TICK
        result = run(tick, set())
        states.update(result.states)
        idle.append(result.evaluated)
    idle_s = time.perf_counter() - started

    # A daemon's passes run with the collector on: a full collection walks every object
    # alive, so a steady figure taken between collections can hide it. As `load_rules`
    # leaves the heap, then frozen as the daemon's rule file load leaves it
    # (`service/rulefile.py`: gc.freeze() after each load).
    daemon_like = []
    for frozen in (False, True):
        if frozen:
            gc.freeze()
        passes = []
        for _ in range(DAEMON_PASSES):
            cpu = time.process_time()
            states.update(run(later, None).states)
            passes.append(time.process_time() - cpu)
        daemon_like.append(passes)
    if gc.get_freeze_count():
        gc.unfreeze()

    day_ahead = ""
    if wakes is not None:  # how many evaluations the next 24 h of idle ticks will make
        horizon = (tick + timedelta(days=1)).timestamp()
        woken = sum(1 for w in wakes.at.values() if w <= horizon)
        day_ahead = f"; {woken:,} pairs wake within 24 h"
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("rules / symbols", f"{len(ruleset.rules):,} / {len(ruleset.symbols):,}"),
        ("load + compile rule file", f"{load_s:.2f} s  (CPU {load_cpu:.2f} s)"),
        (
            "peak RSS of the load",
            f"{load_peak_mib:.0f} MiB ({before_mib:.0f} MiB before it: imports and text)",
        ),
        (
            "load 1,000 rules (median of 7)",
            f"{statistics.median(small_s) * 1000:.0f} ms"
            f"  (CPU {statistics.median(small_cpu) * 1000:.0f} ms)",
        ),
        (
            "full pass (first, all fire-able)",
            f"{full_s * 1000:.0f} ms  {first.evaluated / full_s:,.0f} evals/s"
            f"  {len(first.alerts):,} alerts",
        ),
        (
            "full pass (steady state, best of 3)",
            f"{steady_s * 1000:.0f} ms  (CPU {min(steady_cpu) * 1000:.0f} ms)"
            f"  {again.evaluated / steady_s:,.0f} evals/s  {len(again.alerts):,} alerts",
        ),
        (
            f"incremental ({len(changed)} symbols changed)",
            f"{inc_s * 1000:.0f} ms  {incremental.evaluated:,} evals",
        ),
        (
            f"idle 10 s ticks ({IDLE_TICKS}: 15 min)",
            f"{statistics.mean(idle):,.0f} evals/tick mean, {max(idle):,} max,"
            f" {idle_s / IDLE_TICKS * 1000:.1f} ms/tick{day_ahead}",
        ),
        *(
            (
                f"{DAEMON_PASSES} steady passes, gc on{label}",
                f"CPU mean {statistics.mean(passes) * 1000:.0f} ms,"
                f" max {max(passes) * 1000:.0f} ms",
            )
            for label, passes in zip(("", ", frozen"), daemon_like, strict=True)
        ),
        ("peak RSS", f"{peak_mib:.0f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
