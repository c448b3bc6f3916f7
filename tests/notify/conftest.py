"""Fixtures for the notifier tests: anyio on asyncio, real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from service.engine import Alert
from service.notify.base import Message
from service.notify.render import render
from tests.servers import Receiver, TlsFiles


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP receiver answering `200 ok` until a test scripts other replies."""
    with Receiver() as server:
        yield server


@pytest.fixture(scope="session")
def tls_files() -> TlsFiles:
    return TlsFiles()


@pytest.fixture
def message() -> Message:
    """A rendered alert, as the outbox stores it."""
    alert = Alert(
        rule="lumn-q4-miss",
        symbol="LUMN",
        dedup_key="lumn-q4-miss|LUMN|2025Q4",
        fired_at=datetime(2026, 2, 3, 21, 5, tzinfo=UTC),
        text="LUMN missed: EPS -0.05 vs 0.02 (-350.0%)",
        channels=("ops-hook",),
        values={"eps_actual": -0.05, "eps_estimate": 0.02, "earnings_date": date(2026, 2, 3)},
    )
    return render(alert, "alert_01JABCDEF")
