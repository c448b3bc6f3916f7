"""Benchmark: the idle footprint of `earnwatch run` with 500 symbols and 5,000 rules.

Starts the fake Finnhub of the test tree (`tests/fakes/finnhub.py`, a real HTTP server on
127.0.0.1) with a quote and an upcoming calendar row for each symbol (none reporting, no
price targets: the free tier's 403), writes a rule file of 5,000 rules (price, target,
earnings-reminder and miss rules, over groups and single symbols) and a `.env` with the
default intervals, and runs `earnwatch run` (`python -m service run`, through a wrapper that
writes `sys.modules` on SIGUSR1) as a subprocess in a temporary folder.
After `--settle` seconds it samples the process's resident memory (/proc/PID/status VmRSS)
and CPU time (/proc/PID/stat utime + stime) every second for `--seconds`, counts the
provider requests the fake received in that window and in every sliding 60 s window of the
whole run (Finnhub's free tier allows 60 a minute); at the end of the window it reads where
the resident memory is (/proc/PID/smaps: heap, anonymous mappings, shared libraries), the
threads and the modules loaded, then sends SIGTERM and times the exit. `--at-head` creates
the database's schema before the start, as a restart finds it (no Alembic in the daemon).

    .venv/bin/python bench/daemon_idle.py [--symbols 500] [--rules 5000] [--settle 20]
        [--seconds 60] [--python PATH] [--at-head]

`--python` runs the daemon with another interpreter, e.g. that of a venv made as a user
makes it (`python3 -m venv /tmp/user && /tmp/user/bin/pip install .`, no test extra): the
test extra brings selenium's trio, which httpcore then imports, and that is not what a
user's daemon holds. The daemon's code is still this checkout's (PYTHONPATH).

Imports `tests.fakes.finnhub` and `tests.servers` (the repository root is put on sys.path).
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.hours import is_market_open
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

NEW_YORK = ZoneInfo("America/New_York")
TICK = os.sysconf("SC_CLK_TCK")


class TimedRequests(list[Any]):
    """The fake's request log, with the monotonic time of each request."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        super().append(item)
        self.times.append(time.monotonic())


def symbols_of(n: int) -> list[str]:
    return [f"S{i:03d}" if n <= 1000 else f"S{i:05d}" for i in range(n)]


def fill(fake: FakeFinnhub, symbols: list[str], rng: random.Random) -> None:
    today = datetime.now(NEW_YORK).date()
    now = int(time.time())
    for i, symbol in enumerate(symbols):
        price = round(rng.uniform(5, 500), 2)
        fake.set_quote(symbol, price, round(price * rng.uniform(0.97, 1.03), 2), now)
        fake.set_event(
            symbol=symbol,
            date=(today + timedelta(days=5 + i % 80)).isoformat(),
            hour=rng.choice(["bmo", "amc", ""]),
            year=2026,
            quarter=1,
            epsEstimate=round(rng.uniform(-1, 3), 2),
            revenueEstimate=rng.randint(10, 5000) * 1_000_000,
        )


def rule_file(n_rules: int, symbols: list[str], rng: random.Random) -> str:
    """Four kinds of rule in equal parts; a fifth of them over a group of 10 symbols."""
    groups = {f"g{g}": symbols[g * 10 : g * 10 + 10] for g in range(len(symbols) // 10)}
    lines = [
        "version: 1",
        "channels:",
        '  hook: {type: webhook, url: "${HOOK_URL}", secret: whsec_YmVuY2gtc2lnbmluZy1rZXk=}',
        "defaults:",
        "  notify: [hook]",
        "  cooldown: 4h",
        "groups:",
        *(f"  {name}: [{', '.join(members)}]" for name, members in groups.items()),
        "rules:",
    ]
    kinds = [
        "price > {hi}",  # price: far above any quote, so idle
        "price > target_median",  # target: unknown on the free tier
        "not reported and hours_to_earnings <= 24",  # reminder: reports are 5+ days out
        "reported and eps_actual < eps_estimate",  # miss: nothing reported
    ]
    names = list(groups)
    for i in range(n_rules):
        when = kinds[i % 4].format(hi=round(rng.uniform(1000, 5000), 2))
        target = names[i // 5 % len(names)] if i % 5 == 0 else f"[{symbols[i % len(symbols)]}]"
        lines += [f"  - name: r{i}", f"    symbols: {target}", f"    when: {when}"]
    return "\n".join(lines) + "\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def memory_map(pid: int) -> dict[str, float]:
    """MiB resident by kind, from /proc/PID/smaps: the brk heap, anonymous mappings
    (Python's object arenas, malloc's thread arenas and large blocks, thread stacks),
    shared libraries and other files."""
    kinds = {"heap": 0.0, "anonymous": 0.0, "shared libraries": 0.0, "other files": 0.0}
    kind = "anonymous"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=6)
        if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            name = head[5] if len(head) > 5 else ""
            if name == "[heap]":
                kind = "heap"
            elif not name or name.startswith("["):
                kind = "anonymous"
            elif ".so" in name:
                kind = "shared libraries"
            else:
                kind = "other files"
        elif line.startswith("Rss:"):
            kinds[kind] += int(line.split()[1]) / 1024
    return kinds


def threads(pid: int) -> list[str]:
    tasks = Path(f"/proc/{pid}/task")
    return sorted((tasks / t / "comm").read_text().strip() for t in os.listdir(tasks))


#: Runs `python -m service ...` as -m does, and writes the names in sys.modules to the
#: file named by IDLE_MODULES_OUT on SIGUSR1 (a signal the daemon does not handle).
MODULES_WRAPPER = """\
import os, runpy, signal, sys
def _dump(signum, frame):
    with open(os.environ["IDLE_MODULES_OUT"], "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
signal.signal(signal.SIGUSR1, _dump)
sys.argv = ["service", *sys.argv[1:]]
runpy.run_module("service", run_name="__main__", alter_sys=True)
"""


def modules_of(pid: int, out: Path) -> list[str]:
    """The modules the daemon holds now (the wrapper writes them on SIGUSR1)."""
    out.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if out.exists() and out.stat().st_size:
            time.sleep(0.2)  # written in one call; let it finish
            return out.read_text().split()
        time.sleep(0.1)
    return []


def max_in_window(times: list[float], window: float) -> int:
    best = 0
    for i, t in enumerate(times):
        best = max(best, bisect.bisect_right(times, t + window) - i)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--rules", type=int, default=5000)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds before sampling")
    parser.add_argument("--seconds", type=float, default=60.0, help="sampling window")
    parser.add_argument(
        "--at-head", action="store_true", help="migrate the database before the start"
    )
    parser.add_argument("--keep", action="store_true", help="print the folder; do not delete")
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter that runs the daemon"
    )
    args = parser.parse_args()
    rng = random.Random(7)
    symbols = symbols_of(args.symbols)

    folder = Path(tempfile.mkdtemp(prefix="earnwatch-idle-"))
    with FakeFinnhub() as fake, Receiver() as receiver:
        fake.requests = TimedRequests()
        fill(fake, symbols, rng)
        (folder / "rules.yaml").write_text(rule_file(args.rules, symbols, rng))
        (folder / ".env").write_text(
            "\n".join(
                [
                    "FINNHUB_API_KEY=test-finnhub-key",
                    f"FINNHUB_BASE_URL={fake.base_url}",
                    f"EARNWATCH_DATABASE_URL=sqlite:///{folder}/earnwatch.db",
                    "EARNWATCH_ALLOW_PRIVATE_TARGETS=true",
                    "EARNWATCH_HTTP=127.0.0.1:0",
                    f"HOOK_URL={receiver.url_for('/hooks/idle')}",
                ]
            )
            + "\n"
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("EARNWATCH_", "FINNHUB_", "SMTP_"))
        }
        env["PYTHONPATH"] = str(ROOT)
        modules_out = folder / "modules.txt"
        env["IDLE_MODULES_OUT"] = str(modules_out)
        log_path = folder / "daemon.log"
        if args.at_head:
            subprocess.run(
                [
                    args.python,
                    "-c",
                    "import sys; from service.store import open_store; "
                    "open_store(sys.argv[1]).close()",
                    f"sqlite:///{folder}/earnwatch.db",
                ],
                env=env,
                check=True,
            )
        market_open = is_market_open(datetime.now(NEW_YORK))
        with log_path.open("wb") as out:
            started = time.monotonic()
            process = subprocess.Popen(
                [args.python, "-c", MODULES_WRAPPER, "run", "--rules", "rules.yaml"],
                cwd=folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            pid = process.pid
            samples: list[tuple[float, int, float]] = []
            while time.monotonic() - started < args.settle:
                if process.poll() is not None:
                    sys.exit(f"the daemon exited early ({process.returncode}); see {log_path}")
                time.sleep(0.2)
            window_start = time.monotonic()
            lines_before = len(log_path.read_bytes().splitlines())
            requests_before = len(fake.requests.times)
            while True:
                now = time.monotonic()
                samples.append((now, rss_kib(pid), cpu_seconds(pid)))
                if now - window_start >= args.seconds:
                    break
                time.sleep(min(1.0, window_start + args.seconds - now))
            window_end = time.monotonic()
            kinds = memory_map(pid)
            names = threads(pid)
            modules = modules_of(pid, modules_out)
            requests_window = len(fake.requests.times) - requests_before
            paths = Counter(
                p.rsplit("/api/v1/", 1)[-1] for p, _q, _h in fake.requests[requests_before:]
            )
            log_lines = log_path.read_bytes().splitlines()[lines_before:]
            stop_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
            shutdown_s = time.monotonic() - stop_at
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        times = list(fake.requests.times)
        startup = Counter(
            p.rsplit("/api/v1/", 1)[-1] for p, _q, _h in fake.requests[:requests_before]
        )

    log_text = log_path.read_text(errors="replace")
    warnings = Counter(
        line.split(" WARNING ", 1)[1][:70] if " WARNING " in line else ""
        for line in log_text.splitlines()
        if "WARNING" in line
    )
    seconds = window_end - window_start
    cpu_used = samples[-1][2] - samples[0][2]
    rss = [kib for _t, kib, _c in samples]
    rows = [
        ("symbols / rules", f"{args.symbols:,} / {args.rules:,}"),
        ("database at start", "at the head (--at-head)" if args.at_head else "empty"),
        ("market open now (NYSE)", "yes" if market_open else "no"),
        ("settle, then sampled", f"{args.settle:.0f} s, then {seconds:.0f} s"),
        (
            "RSS start / end / peak",
            f"{rss[0] / 1024:.0f} / {rss[-1] / 1024:.0f} / {max(rss) / 1024:.0f} MiB",
        ),
        (
            "RSS at the end, by kind (MiB)",
            f"{rss[-1] / 1024:.1f}: " + ", ".join(f"{k} {v:.1f}" for k, v in kinds.items()),
        ),
        ("threads", f"{len(names)}  ({', '.join(names)})"),
        (
            "modules at the end",
            f"{len(modules)}  ("
            + ", ".join(
                f"{k} {v}" for k, v in Counter(m.split(".")[0] for m in modules).most_common(12)
            )
            + ")",
        ),
        (
            "CPU used in the window",
            f"{cpu_used:.2f} s  ({cpu_used / seconds * 100:.1f} % of one core)",
        ),
        ("CPU used since start", f"{samples[-1][2]:.2f} s"),
        (
            "provider requests before the window",
            f"{requests_before}  ({', '.join(f'{k} {v}' for k, v in startup.most_common())})",
        ),
        (
            "provider requests in the window",
            f"{requests_window}  ({', '.join(f'{k} {v}' for k, v in paths.most_common())})",
        ),
        ("Finnhub rate in the window", f"{requests_window / seconds * 60:.0f} per 60 s"),
        ("Finnhub max in any 60 s (whole run)", f"{max_in_window(times, 60.0)} (limit 60)"),
        (
            "shortest span of 61 requests",
            f"{min((b - a for a, b in zip(times, times[60:], strict=False)), default=float('nan')):.3f} s",
        ),
        ("log lines in the window", f"{len(log_lines)}"),
        ("alerts received by the webhook", f"{len(receiver.requests)}"),
        ("SIGTERM -> exit", f"{shutdown_s:.2f} s, exit code {code}"),
        (
            "ERROR lines / tracebacks in the log",
            f"{sum(' ERROR ' in line for line in log_text.splitlines())} / "
            f"{log_text.count('Traceback (most recent call last)')}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for text, n in warnings.most_common(5):
        print(f"  WARNING x{n}: {text}")
    if args.keep:
        print(f"folder: {folder}")
    else:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()


if __name__ == "__main__":
    main()
