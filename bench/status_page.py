"""Benchmark: how long the status page takes to build and render for a large rule file.

Loads a rule file of `--rules` price rules over `--symbols` symbols (each symbol with a
quote and an upcoming report), gives every (rule, symbol) a state, and times, over
`--repeat` runs: `status_snapshot()` (the pure snapshot: one `explain()` per rule and
symbol), the HTML render (the real Jinja2 template) and the JSON dump. Both run on the
daemon's event loop when a page is asked for, so this is how long one request holds it.

    .venv/bin/python bench/status_page.py [--rules 5000] [--symbols 500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.engine import RuleState
from service.market import EarningsEvent, Quote, ReportTime
from service.marketdata import MarketData
from service.rules import load_rules
from service.status import Replica, status_snapshot
from service.webapp import REFRESH_SECONDS, _jsonable, _templates
from tests.rules.conftest import CHANNEL_CONFIGS

NOW = datetime(2026, 2, 4, 16, 30, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=5000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    symbols = [f"S{i:04d}" for i in range(args.symbols)]
    lines = ["channels:", '  hook: {type: webhook, url: "https://example.com/h"}', "rules:"]
    for i in range(args.rules):
        lines += [
            f"  - name: r{i}",
            f"    symbols: [{symbols[i % len(symbols)]}]",
            f"    when: price > {10 + i % 7}",
            "    cooldown: 1h",
            "    notify: [hook]",
        ]
    ruleset = load_rules(
        "\n".join(lines) + "\n", source="bench.yaml", env={}, channel_configs=CHANNEL_CONFIGS
    )
    data = MarketData(quotes={s: Quote(s, 12.0, 11.0, time=NOW) for s in symbols})
    events = [
        EarningsEvent(s, date(2026, 2, 10), ReportTime.AMC, 2026, 1, eps_estimate=1.0)
        for s in symbols
    ]
    data.apply_events(events, symbols, date(2026, 2, 1), date(2026, 3, 1))
    states = {
        (r.name, s): RuleState(r.fingerprint, armed=False, last_fired=NOW - timedelta(minutes=5))
        for r in ruleset.rules
        for s in r.symbols
    }
    template = _templates().get_template("status.html")
    build, render, dump = [], [], []
    size = 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        snap = status_snapshot(
            ruleset=ruleset,
            states=states,
            data=data,
            silences=[],
            alerts=[],
            replica=Replica(healthy=True, health="ok", leading=True),
            now=NOW,
        )
        t1 = time.perf_counter()
        html = template.render(s=_jsonable(snap), refresh=REFRESH_SECONDS)
        t2 = time.perf_counter()
        json.dumps(snap, default=str)
        t3 = time.perf_counter()
        build.append(t1 - t0)
        render.append(t2 - t1)
        dump.append(t3 - t2)
        size = len(html.encode())
    print(f"{args.rules} rules over {args.symbols} symbols, median of {args.repeat}:")
    print(f"  snapshot {statistics.median(build) * 1000:.0f} ms")
    print(f"  HTML render {statistics.median(render) * 1000:.0f} ms ({size / 1e6:.1f} MB)")
    print(f"  JSON dump {statistics.median(dump) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
