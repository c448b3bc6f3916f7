"""Benchmark: trade-to-webhook latency through Finnhub's trade stream, and the same
crossing through REST polling at 1 s.

Starts the fakes of the test tree on 127.0.0.1: Finnhub's REST API (`tests/fakes/finnhub.py`),
its trade WebSocket (`tests/fakes/finnhub_stream.py`) and a webhook receiver
(`tests/servers.py`), then `python -m service run` as a subprocess with one rule,
`price > 10` on LUMN, and pushes `--crossings` crossings:

- stream: a trade at 9 (re-arms the rule), 0.2 s later a trade at 11; the latency runs from
  the moment the trade was sent to the moment the receiver read the webhook request
  (`EARNWATCH_PRICE_POLL=60s`, so REST cannot deliver it);
- rest (`--rest`): the same with the stream off and `EARNWATCH_PRICE_POLL=1s`: the fake's
  quote goes to 9, then to 11, and the latency runs from the moment the quote changed.

    .venv/bin/python bench/stream_latency.py [--crossings 50] [--rest]

Imports `tests.fakes` and `tests.servers` (the repository root is put on sys.path).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.finnhub import FakeFinnhub
from tests.fakes.finnhub_stream import FakeFinnhubStream
from tests.servers import Receiver

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: above-10
    symbols: [LUMN]
    when: price > 10
    notify: [hook]
"""


def wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return True
        time.sleep(0.002)
    return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crossings", type=int, default=50)
    parser.add_argument("--rest", action="store_true", help="REST polling at 1 s instead")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="earnwatch-bench-"))
    with FakeFinnhub() as finnhub, FakeFinnhubStream() as stream, Receiver() as receiver:
        finnhub.set_quote("LUMN", 9.0, 9.0, int(time.time()) - 60)
        env = [
            "FINNHUB_API_KEY=test-finnhub-key",
            f"FINNHUB_BASE_URL={finnhub.base_url}",
            f"EARNWATCH_DATABASE_URL=sqlite:///{folder}/earnwatch.db",
            "EARNWATCH_ALLOW_PRIVATE_TARGETS=true",
            "EARNWATCH_HTTP=off",
            "EARNWATCH_CALENDAR_REFRESH=6h",
            f"HOOK_URL={receiver.url_for('/hook')}",
            "EARNWATCH_LOG_LEVEL=WARNING",
        ]
        if args.rest:
            env += [
                "EARNWATCH_STREAM=off",
                "EARNWATCH_PRICE_POLL=1s",
                "EARNWATCH_OFF_HOURS_POLL=1s",
            ]
        else:
            env += [
                "EARNWATCH_STREAM=finnhub",
                f"FINNHUB_STREAM_URL={stream.url}",
                "EARNWATCH_PRICE_POLL=60s",
                "EARNWATCH_OFF_HOURS_POLL=60s",
            ]
        (folder / ".env").write_text("\n".join(env) + "\n")
        (folder / "rules.yaml").write_text(RULES)
        child_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("EARNWATCH_", "FINNHUB_"))
        }
        child_env["PYTHONPATH"] = str(ROOT)
        log = (folder / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "service", "run"],
            cwd=folder,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            ready = (
                (lambda: finnhub.count("/quote") >= 2)
                if args.rest
                else (lambda: stream.subscribed() == {"LUMN"})
            )
            if not wait(ready, 30) or not wait(lambda: finnhub.count("/quote") >= 1, 30):
                print("the daemon did not start; see", folder / "daemon.log")
                return 1
            time.sleep(1.0)
            latencies: list[float] = []
            missed = 0
            for _ in range(args.crossings):
                seen = len(receiver.requests)
                now_ms = int(time.time() * 1000)
                if args.rest:
                    finnhub.set_quote("LUMN", 9.0, 9.0, int(time.time()))
                    polls = finnhub.count("/quote")
                    wait(lambda p=polls: finnhub.count("/quote") >= p + 2, 5)  # type: ignore[misc]
                    finnhub.set_quote("LUMN", 11.0, 9.0, int(time.time()) + 1)
                else:
                    stream.trade("LUMN", 9.0, now_ms)
                    time.sleep(0.2)
                    stream.trade("LUMN", 11.0, now_ms + 200)
                sent = time.monotonic()
                if not wait(lambda s=seen: len(receiver.requests) > s, 10):  # type: ignore[misc]
                    missed += 1
                    continue
                latencies.append((receiver.requests[seen].at - sent) * 1000)
                time.sleep(0.2)
            time.sleep(1.0)
            received = len(receiver.requests)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
            log.close()
    bodies = [json.loads(r.body)["values"]["price"] for r in receiver.requests]
    print(f"path                          {'rest, 1 s polling' if args.rest else 'stream'}")
    print(f"crossings / alerts received   {args.crossings} / {received} (missed {missed})")
    print(f"all alerts at 11              {all(p == 11.0 for p in bodies)}")
    if latencies:
        print(
            f"latency p50 / p99             {statistics.median(latencies):.1f} ms / {percentile(latencies, 99):.1f} ms"
        )
        print(f"latency min / max             {min(latencies):.1f} ms / {max(latencies):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
