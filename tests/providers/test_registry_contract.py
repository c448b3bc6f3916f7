"""The registry's contract: every provider's declaration (`PROVIDER = ProviderType(...)`)
matches `Settings`, its key is masked in logs, its factory builds it, and its declared
capabilities are the calls it really answers. A new provider module is held to all of it
by being listed in `PROVIDERS`; `declaration_problems` catches a broken declaration."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from service.clock import FakeClock
from service.config import Settings
from service.errors import ProviderUnsupported
from service.logs import MASK, setup_logging
from service.providers import PROVIDERS, finnhub
from service.providers.base import Provider
from service.providers.limiter import Rate
from service.providers.plugin import Capability, ProviderType, Setting, declaration_problems
from tests.providers.conftest import FINNHUB, FMP, NASDAQ
from tests.providers.test_contract import serve_finnhub, serve_fmp, serve_nasdaq

#: The respx server of each HTTP provider, shaped like its recorded payloads.
SERVERS: dict[str, tuple[str, Callable[[httpx.Request], httpx.Response]]] = {
    "finnhub": (FINNHUB, serve_finnhub),
    "fmp": (FMP, serve_fmp),
    "nasdaq": (NASDAQ, serve_nasdaq),
}

CALLS: dict[Capability, Callable[[Provider], Awaitable[Any]]] = {
    Capability.QUOTES: lambda p: p.quotes(["AAPL", "LUMN"]),
    Capability.EARNINGS: lambda p: p.earnings(date(2026, 2, 2), date(2026, 2, 6), ["LUMN"]),
    Capability.PRICE_TARGETS: lambda p: p.price_targets("AAPL"),
}

TYPES = list(PROVIDERS.values())


@pytest.fixture(params=TYPES, ids=lambda t: t.name)
def ptype(request: pytest.FixtureRequest) -> ProviderType:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)


def settings_for(ptype: ProviderType, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with the provider's key set and its base URL on the respx server."""
    if ptype.key is not None:
        monkeypatch.setenv(ptype.key.env, f"sk-{ptype.name}-0123456789")
    if ptype.base_url is not None:
        assert ptype.name in SERVERS, f"add a respx server for {ptype.name} to SERVERS"
        monkeypatch.setenv(ptype.base_url.env, SERVERS[ptype.name][0])
    return Settings(_env_file=None)


def test_every_declaration_is_complete(ptype):
    assert declaration_problems(ptype) == []
    assert all(rate.calls > 0 and rate.per > 0 for rate in ptype.rates)
    assert ptype.max_batch >= 1 and ptype.capabilities


def test_the_registry_is_keyed_by_each_declared_name():
    assert all(name == ptype.name for name, ptype in PROVIDERS.items())


def test_a_key_is_a_secret_setting_read_from_its_variable(ptype):
    if ptype.key is None:
        pytest.skip(f"{ptype.name} is keyless")
    field = Settings.model_fields[ptype.key.field]
    assert field.validation_alias == ptype.key.env
    assert SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))


def test_a_key_set_in_its_variable_is_masked_in_logs(ptype, monkeypatch, capsys, restore_logging):
    if ptype.key is None:
        pytest.skip(f"{ptype.name} is keyless")
    value = f"SENTINEL-{ptype.name}-key-0123456789"
    monkeypatch.setenv(ptype.key.env, value)
    settings = Settings(_env_file=None)
    assert ptype.api_key(settings).get_secret_value() == value
    assert value in settings.secrets()
    setup_logging(fmt="text", level="INFO", secrets=settings.secrets())
    logging.getLogger("tests.registry").warning("calling with token=%s", value)
    err = capsys.readouterr().err
    assert f"token={MASK}" in err and value not in err


def test_a_base_url_is_a_setting_read_from_its_variable(ptype, monkeypatch):
    if ptype.base_url is None:
        pytest.skip(f"{ptype.name} has no base URL")
    assert Settings.model_fields[ptype.base_url.field].validation_alias == ptype.base_url.env
    monkeypatch.setenv(ptype.base_url.env, "https://elsewhere.test/api/")
    settings = Settings(_env_file=None)
    assert ptype.base_url_of(settings) == "https://elsewhere.test/api/"


@pytest.mark.anyio
async def test_the_factory_builds_the_declared_provider(ptype, monkeypatch, clock):
    provider = ptype.factory(settings_for(ptype, monkeypatch), clock)
    try:
        assert (provider.name, provider.max_batch) == (ptype.name, ptype.max_batch)
    finally:
        await provider.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("capability", list(Capability), ids=str)
async def test_declared_capabilities_are_the_calls_answered(
    ptype, capability, monkeypatch, clock: FakeClock
):
    provider = ptype.factory(settings_for(ptype, monkeypatch), clock)
    try:
        with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
            if ptype.name in SERVERS:
                base, serve = SERVERS[ptype.name]
                router.route(url__startswith=base).mock(side_effect=serve)
            if capability in ptype.capabilities:
                await CALLS[capability](provider)
            else:
                with pytest.raises(ProviderUnsupported):
                    await CALLS[capability](provider)
    finally:
        await provider.aclose()


BROKEN = [
    (
        "no-such-field",
        replace(finnhub.PROVIDER, key=Setting("NOPE_API_KEY", "nope_api_key")),
        "nope_api_key",
    ),
    (
        "not-a-secret",
        replace(finnhub.PROVIDER, key=Setting("FINNHUB_BASE_URL", "finnhub_base_url")),
        "'finnhub_base_url' is not a SecretStr",
    ),
    (
        "other-variable",
        replace(finnhub.PROVIDER, key=Setting("FINNHUB_TOKEN", "finnhub_api_key")),
        "not 'FINNHUB_TOKEN'",
    ),
    (
        "base-url-not-a-field",
        replace(finnhub.PROVIDER, base_url=Setting("FINNHUB_URL", "finnhub_url")),
        "'finnhub_url' is not a Settings field",
    ),
    ("zero-rate", replace(finnhub.PROVIDER, rates=(Rate(0, 60.0),)), "is not positive"),
    ("no-batch", replace(finnhub.PROVIDER, max_batch=0), "max_batch 0"),
    ("no-capability", replace(finnhub.PROVIDER, capabilities=frozenset()), "no capability"),
]


@pytest.mark.parametrize(("broken", "problem"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_an_incomplete_declaration_is_caught(broken, problem):
    problems = declaration_problems(broken)
    assert len(problems) == 1 and problem in problems[0], problems


def test_the_registry_refuses_an_unsound_or_repeated_declaration() -> None:
    from dataclasses import replace

    from service.providers import registry
    from service.providers.finnhub import PROVIDER

    with pytest.raises(TypeError, match="declared twice"):
        registry(PROVIDER, PROVIDER)
    with pytest.raises(TypeError, match="max_batch 0 is below 1"):
        registry(replace(PROVIDER, max_batch=0))
