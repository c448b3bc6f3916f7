"""Helpers for the end-to-end tests of issue #10 that prove no alert is swallowed: the
daemon's `.env` against the fake Finnhub and a Receiver, and readers of its `/healthz` and
`/metrics` (found from the address it logs)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import Daemon, fast_env, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

HOOK_PATH = "/hooks/alerts-s3cr3t-path"


def write_env(
    folder: Path, finnhub: FakeFinnhub, receiver: Receiver, extra: Iterable[str] = ()
) -> None:
    """Fast polls of everything, a webhook channel `HOOK_URL`, health on a free port."""
    lines = [
        *fast_env(folder, finnhub.base_url),
        f"HOOK_URL={receiver.url_for(HOOK_PATH)}",
        *extra,
    ]
    (folder / ".env").write_text("\n".join(lines) + "\n")


def base_url(daemon: Daemon) -> str:
    """The daemon's health and metrics address, once it has logged it."""
    pattern = r"health and metrics on (http://127\.0\.0\.1:\d+)"
    wait_for(lambda: re.search(pattern, daemon.log()), 15, "the health address", daemon)
    found = re.search(pattern, daemon.log())
    assert found is not None
    return found.group(1)


def health(daemon: Daemon) -> tuple[int, str]:
    reply = httpx.get(f"{base_url(daemon)}/healthz", timeout=5)
    return reply.status_code, reply.text.strip()


def metric(daemon: Daemon, name: str, **labels: str) -> float:
    """One sample of `/metrics` (0 when absent)."""
    text = httpx.get(f"{base_url(daemon)}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
