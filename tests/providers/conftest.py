"""Shared fixtures of the provider tests: anyio on asyncio, a fake clock, recorded payloads,
and each vendor's provider built on a client and a limiter that never sleeps for real."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from service.clock import FakeClock
from service.httpclient import build_client
from service.providers import finnhub, fmp, nasdaq
from service.providers.finnhub import FinnhubProvider
from service.providers.fmp import FmpProvider, fmp_client
from service.providers.nasdaq import NasdaqProvider

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KEY = "sk-SECRET-0123456789"
FINNHUB = "https://finnhub.test/api/v1"
FMP = "https://fmp.test/stable"
NASDAQ = "https://nasdaq.test/api"


def fixture_text(vendor: str, name: str) -> str:
    return (FIXTURES / vendor / name).read_text(encoding="utf-8")


def fixture_json(vendor: str, name: str) -> Any:
    return json.loads(fixture_text(vendor, name))


def ok(vendor: str, name: str) -> httpx.Response:
    return httpx.Response(200, json=fixture_json(vendor, name))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 2, 4, 15, 0, tzinfo=UTC))


def make_finnhub(clock: FakeClock) -> FinnhubProvider:
    client = build_client(base_url=FINNHUB + "/")
    return FinnhubProvider(client, SecretStr(KEY), finnhub.PROVIDER.limiter(clock))


def make_fmp(clock: FakeClock) -> FmpProvider:
    return FmpProvider(fmp_client(FMP, SecretStr(KEY)), fmp.PROVIDER.limiter(clock))


def make_nasdaq(clock: FakeClock) -> NasdaqProvider:
    return NasdaqProvider(build_client(base_url=NASDAQ + "/"), nasdaq.PROVIDER.limiter(clock))


Factory = Callable[[FakeClock], Any]
