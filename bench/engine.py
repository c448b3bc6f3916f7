"""Benchmark: evaluate 100,000 rules over 10,000 symbols.

Prints the rule file load time, a full evaluation pass, an incremental pass where 1% of
the symbols have new data, evaluations per second, and peak memory.

    .venv/bin/python bench/engine.py [--rules 100000] [--symbols 10000]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.engine import RuleState, evaluate
from service.market import EarningsEvent, Quote, ReportTime, Snapshot
from service.notify import CHANNEL_CONFIGS
from service.rules import load_rules

CONDITIONS = [
    "price > {t}",
    "price < {t} and change_pct < -5",
    "reported and eps_actual < eps_estimate",
    "not reported and hours_to_earnings <= 24",
    "reported and move_since_report_pct <= -8",
    "abs(change_pct) >= 7 or price > target_median",
]


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(7)
    symbols = [f"S{i:05d}" for i in range(args.symbols)]
    text = rule_file(args.rules, symbols, rng)

    started = time.perf_counter()
    ruleset = load_rules(text, source="bench.yaml", env={}, channel_configs=CHANNEL_CONFIGS)
    load_s = time.perf_counter() - started
    snaps = snapshots(symbols, rng)
    now = datetime(2026, 2, 3, 22, tzinfo=UTC)

    started = time.perf_counter()
    first = evaluate(ruleset, snaps, {}, now)
    full_s = time.perf_counter() - started
    states: dict[tuple[str, str], RuleState] = dict(first.states)

    changed = set(rng.sample(symbols, max(1, len(symbols) // 100)))
    later = now + timedelta(minutes=1)
    started = time.perf_counter()
    incremental = evaluate(ruleset, snaps, states, later, changed=changed)
    inc_s = time.perf_counter() - started

    started = time.perf_counter()
    again = evaluate(ruleset, snaps, states, later)
    steady_s = time.perf_counter() - started

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("rules / symbols", f"{len(ruleset.rules):,} / {len(ruleset.symbols):,}"),
        ("load + compile rule file", f"{load_s:.2f} s"),
        (
            "full pass (first, all fire-able)",
            f"{full_s * 1000:.0f} ms  {first.evaluated / full_s:,.0f} evals/s  {len(first.alerts):,} alerts",
        ),
        (
            "full pass (steady state)",
            f"{steady_s * 1000:.0f} ms  {again.evaluated / steady_s:,.0f} evals/s  {len(again.alerts):,} alerts",
        ),
        (
            f"incremental ({len(changed)} symbols changed)",
            f"{inc_s * 1000:.0f} ms  {incremental.evaluated:,} evals",
        ),
        ("peak RSS", f"{peak_mib:.0f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
