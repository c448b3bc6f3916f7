"""A folder ready for `earnwatch run`: a `.env` pointing at the fake Finnhub and a receiver,
and a rule file of one LUMN miss rule (or many generated rules). For the daemon's
lifecycle tests (signals, reloads, settings)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.e2e import ROOT, Daemon, fast_env
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

TODAY = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
ROW = {
    "symbol": "LUMN",
    "date": TODAY,
    "hour": "amc",
    "year": 2025,
    "quarter": 4,
    "epsEstimate": -0.21,
    "revenueEstimate": 3080000000,
}
MISSED = {**ROW, "epsActual": -0.30, "revenueActual": 3041000000}

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [hook]
"""


def fake_finnhub() -> FakeFinnhub:
    fake = FakeFinnhub().start()
    fake.set_event(**ROW)
    fake.set_quote("LUMN", 8.46, 8.93, int(time.time()))
    return fake


def write_env(folder: Path, finnhub: FakeFinnhub, receiver: Receiver, *extra: str) -> Path:
    env = folder / ".env"
    lines = [
        *fast_env(folder, finnhub.base_url),
        f"HOOK_URL={receiver.url_for('/hooks/earnings')}",
        *extra,
    ]
    env.write_text("\n".join(lines) + "\n")
    env.chmod(0o600)
    return env


def many_rules(count: int, threshold: float = 1000.0) -> str:
    """`count` idle price rules over 100 symbols (LUMN's miss rule first)."""
    lines = [RULES.rstrip("\n")]
    for i in range(count):
        lines += [
            f"  - name: r{i}",
            f"    symbols: [S{i % 100:03d}]",
            f"    when: price > {threshold + i % 7}",
            "    notify: [hook]",
        ]
    return "\n".join(lines) + "\n"


def web_base(daemon: Daemon) -> str | None:
    found = re.search(r"health and metrics on (http://127\.0\.0\.1:\d+)", daemon.log())
    return found.group(1) if found else None


class UnprivilegedDaemon(Daemon):
    """`earnwatch run` that file permissions apply to even when the tests run as root:
    the capabilities that bypass them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) are dropped
    from its bounding set with util-linux `setpriv`."""

    def start(self) -> Daemon:
        self.starts += 1
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("EARNWATCH_", "FINNHUB_", "SMTP_"))
        }
        env["PYTHONPATH"] = str(ROOT)
        prefix = []
        if os.geteuid() == 0:
            prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "service", "run", *self.args],
                cwd=self.folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self


def can_drop_file_permissions() -> bool:
    return os.geteuid() != 0 or shutil.which("setpriv") is not None
