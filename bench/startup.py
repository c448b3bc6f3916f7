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

Last, what a user feels of `earnwatch run`: the time from spawn to the first `200` of
`/healthz` (polled every 10 ms), with the `replay` provider (no network), a rule that never
fires and a SQLite database already at the head (a first, untimed run migrates it); the
CPU time and RSS of the daemon at that moment are read from /proc (Linux). `--run-runs`
starts (default 5); `--run-runs 0` skips it.

    .venv/bin/python bench/startup.py [--runs 20] [--run-runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
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

#: `run` until /healthz says 200: one rule that never fires, on the replay provider.
RUN = """\
version: 1
channels:
  hook: {type: webhook, url: "https://hooks.example.com/earnwatch", secret: whsec_YmVuY2gtc2lnbmluZy1rZXk=}
defaults:
  notify: [hook]
rules:
  - name: never
    symbols: [LUMN]
    when: price > 1000000
"""

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def proc_cpu_rss(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident KiB of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return cpu, rss


def first_healthz(folder: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds from spawn to the first /healthz 200, and the daemon's CPU seconds and
    RSS KiB then; the daemon is stopped with SIGTERM afterwards."""
    port = free_port()
    run_env = {
        **env,
        "EARNWATCH_PROVIDERS": "replay",
        "EARNWATCH_DATABASE_URL": f"sqlite:///{folder / 'run.db'}",
        "EARNWATCH_HTTP": f"127.0.0.1:{port}",
    }
    url = f"http://127.0.0.1:{port}/healthz"
    log = (folder / "run.log").open("wb")
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(SCRIPT), "run", "--rules", "run.yaml"],
        cwd=folder,
        env=run_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while True:
            if process.poll() is not None:
                sys.exit(f"earnwatch run exited {process.returncode}: see {folder / 'run.log'}")
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        wall = time.perf_counter() - start
                        cpu, rss = proc_cpu_rss(process.pid)
                        return wall, cpu, rss
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        log.close()


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--run-runs", type=int, default=5, help="starts of `run` to /healthz")
    args = parser.parse_args()
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="earnwatch-startup-") as tmp:
        folder = Path(tmp)
        (folder / "small.yaml").write_text(SMALL)
        (folder / "small_msg.yaml").write_text(SMALL_MSG)
        (folder / "run.yaml").write_text(RUN)
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
        if args.run_runs > 0:
            first_healthz(folder, env)  # migrates the empty database; not timed
            starts = [first_healthz(folder, env) for _ in range(args.run_runs)]
            walls = [wall for wall, _cpu, _rss in starts]
            print(
                f"{'run: spawn to /healthz 200':<29} {statistics.median(walls) * 1000:>6.0f}ms"
                f" {p90(walls) * 1000:>5.0f}ms"
                f" {statistics.median(cpu for _w, cpu, _r in starts) * 1000:>6.0f}ms"
                f" {'-':>7} {statistics.median(rss for _w, _c, rss in starts) / 1024:>5.0f}MiB"
                f"  ({args.run_runs} starts; RSS at that moment, not the peak)"
            )


if __name__ == "__main__":
    main()
