"""Benchmark: the rule file load alone, best CPU of `--repeat` loads in one fresh process.

The same 100,000-rule file as `bench/engine.py` (its `rule_file`, seed 7), loaded with its
`load`. `bench/engine.py`'s load row comes after the imports and the text of the file;
this one repeats the load alone, so two trees can be compared by running it alternately:

    .venv/bin/python bench/load_only.py [--tree PATH] [--rules 100000] [--repeat 2]

`--tree` loads another checkout's `bench/engine.py` and `service/` (default: this one).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import random
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    engine = importlib.import_module("bench.engine")
    symbols = [f"S{i:05d}" for i in range(args.symbols)]
    text = engine.rule_file(args.rules, symbols, random.Random(7))
    best = float("inf")
    for _ in range(args.repeat):
        started = time.process_time()
        ruleset = engine.load(text)
        best = min(best, time.process_time() - started)
        del ruleset
        gc.collect()
    print(f"tree                    {args.tree}")
    print(f"load {args.rules:,} rules, CPU   {best:.2f} s (best of {args.repeat})")


if __name__ == "__main__":
    main()
