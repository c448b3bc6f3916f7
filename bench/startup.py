"""Benchmark: how long `earnwatch` takes to start and what it imports, per command.

Runs each command N times as a subprocess (the installed console script
`.venv/bin/earnwatch`, whole-process wall time from spawn to exit) in a temporary folder
with no `EARNWATCH_*` variables, and prints the median and p90 of the wall time and the
median CPU time (user + system: steadier than wall time on a shared machine). Then runs
each command once more through a `-c` wrapper that writes `sys.modules` and the peak RSS at
exit, and prints how many modules were imported, that peak, and which of the heavy packages
were among them.

Commands: `--help`, `version`, `check --rules small.yaml` (5 rules, one webhook channel,
no message templates), `check --rules small_msg.yaml` (the same with a `message:`), and
`import service.cli` / `import service.daemon` (what `run` imports before it starts).

    .venv/bin/python bench/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "earnwatch"

#: Packages whose import is a visible cost; printed when a command imports them.
HEAVY = (
    "alembic",
    "psycopg",
    "sqlalchemy",
    "sqlmodel",
    "pydantic",
    "pydantic_settings",
    "starlette",
    "uvicorn",
    "websockets",
    "jinja2",
    "apscheduler",
    "httpx",
    "aiosmtplib",
    "prometheus_client",
    "typer",
    "click",
    "rich",
    "yaml",
    "holidays",
    "matplotlib",
    "asyncio",
)

SMALL = """\
version: 1
channels:
  hook: {type: webhook, url: "https://hooks.example.com/earnwatch", secret: whsec_YmVuY2gtc2lnbmluZy1rZXk=}
defaults:
  notify: [hook]
  cooldown: 4h
rules:
  - name: lumn_up
    symbols: [LUMN]
    when: price > 10
  - name: aapl_target
    symbols: [AAPL]
    when: price > target_median
  - name: reminder
    symbols: [AAPL, MSFT]
    when: not reported and hours_to_earnings <= 24
  - name: miss
    symbols: [MSFT]
    when: reported and eps_actual < eps_estimate
  - name: gap
    symbols: [NVDA]
    when: reported and gap_pct < -5
"""

SMALL_MSG = (
    SMALL
    + """\
  - name: with_message
    symbols: [LUMN]
    when: price < 2
    message: "{{ symbol }} fell to {{ price }}"
"""
)

WRAPPER = """\
import atexit, os, resource, sys
def _dump():
    with open(os.environ["BENCH_MODULES_OUT"], "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) + "\\n")
        f.write("\\n".join(sorted(sys.modules)))
atexit.register(_dump)
args = sys.argv[1:]
if args and args[0] == "--import":
    __import__(args[1])
else:
    sys.argv = ["earnwatch", *args]
    from service.cli import main
    main()
"""


def clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EARNWATCH_", "FINNHUB_", "FMP_", "SMTP_", "PYTHON"))
    }
    env["PYTHONPATH"] = str(ROOT)
    return env


def timed(
    argv: list[str], folder: Path, env: dict[str, str], runs: int
) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system of the child) of each run."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-400:]}")
    return times, cpu


def modules(args: list[str], folder: Path, env: dict[str, str]) -> tuple[list[str], int]:
    """The modules imported by one run, and its peak RSS in KiB."""
    out = folder / "modules.txt"
    subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=folder,
        env={**env, "BENCH_MODULES_OUT": str(out)},
        capture_output=True,
        check=False,
    )
    peak, *names = out.read_text().splitlines()
    return names, int(peak)


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="earnwatch-startup-") as tmp:
        folder = Path(tmp)
        (folder / "small.yaml").write_text(SMALL)
        (folder / "small_msg.yaml").write_text(SMALL_MSG)
        python = [sys.executable]
        cases = [
            ("earnwatch --help", [str(SCRIPT), "--help"], ["--help"]),
            ("earnwatch version", [str(SCRIPT), "version"], ["version"]),
            (
                "earnwatch check (no message)",
                [str(SCRIPT), "check", "--rules", "small.yaml"],
                ["check", "--rules", "small.yaml"],
            ),
            (
                "earnwatch check (a message)",
                [str(SCRIPT), "check", "--rules", "small_msg.yaml"],
                ["check", "--rules", "small_msg.yaml"],
            ),
            (
                "import service.cli",
                [*python, "-c", "import service.cli"],
                ["--import", "service.cli"],
            ),
            (
                "import service.daemon",
                [*python, "-c", "import service.daemon"],
                ["--import", "service.daemon"],
            ),
        ]
        base, base_cpu = timed([*python, "-c", "pass"], folder, env, args.runs)
        print(
            f"runs per command: {args.runs}; python -c pass: median "
            f"{statistics.median(base) * 1000:.0f} ms wall, "
            f"{statistics.median(base_cpu) * 1000:.0f} ms CPU; load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'command':<29} {'wall p50':>8} {'p90':>7} {'CPU p50':>8} {'modules':>7}"
            f" {'max RSS':>8}  heavy packages imported"
        )
        for name, argv, wrapper_args in cases:
            times, cpu = timed(argv, folder, env, args.runs)
            names, peak = modules(wrapper_args, folder, env)
            tops = {n.split(".", 1)[0] for n in names}
            heavy = [h for h in HEAVY if h in tops]
            print(
                f"{name:<29} {statistics.median(times) * 1000:>6.0f}ms"
                f" {p90(times) * 1000:>5.0f}ms {statistics.median(cpu) * 1000:>6.0f}ms"
                f" {len(names):>7} {peak / 1024:>5.0f}MiB  {' '.join(heavy) or '-'}"
            )


if __name__ == "__main__":
    main()
