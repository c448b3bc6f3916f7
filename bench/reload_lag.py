"""Benchmark: the event loop's lag while a running daemon reloads a 30,000-rule file.

Starts the real `Daemon` in process (SQLite in a temporary folder, no HTTP listener, an
idle in-memory provider), waits until it runs, rewrites every threshold of the file and
requests a reload (what SIGHUP does) while a task that sleeps 10 ms in a loop records how
late it wakes. Prints the time of the start load and of the reload (from the request to the
end of the evaluation that follows it) and the lag figures.

    .venv/bin/python bench/reload_lag.py [--rules 30000]

Imports `tests.lag` (the repository root is put on sys.path).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lag import measure_reload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=30_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="earnwatch-reload-") as folder:
        lag = asyncio.run(measure_reload(Path(folder), args.rules))
    print(f"rules                              {lag.rules:,}")
    print(f"load at start                      {lag.start_load:.2f} s")
    print(f"reload (request -> evaluated)      {lag.reload:.2f} s")
    print(f"loop lag samples (10 ms sleeps)    {lag.samples:,}")
    print(
        f"loop lag p99 / max                 {lag.p99_lag * 1000:.0f} ms / {lag.max_lag * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
