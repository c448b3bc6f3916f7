"""FailoverProvider: the next provider of EARNWATCH_PROVIDERS serves a call the first cannot,
and a provider cooling down after a 429 or a refused key is skipped until its time."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
import respx

from service.config import Settings
from service.errors import ConfigError, ProviderUnavailable, ProviderUnsupported
from service.providers import PROVIDERS, FailoverProvider, build_providers
from service.providers.plugin import Capability
from tests.providers.conftest import FINNHUB, FMP, fixture_json, make_finnhub, make_fmp, ok


@pytest.fixture
async def chain(clock):
    provider = FailoverProvider([make_finnhub(clock), make_fmp(clock)], clock=clock)
    yield provider
    await provider.aclose()


def fmp_quotes(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=fixture_json("fmp", "batch_quote.json")[:1])


@pytest.mark.anyio
async def test_a_provider_failing_mid_run_hands_over_to_the_next(chain, clock):
    with respx.mock(assert_all_mocked=True) as router:
        finnhub = router.get(f"{FINNHUB}/quote").mock(
            side_effect=[ok("finnhub", "quote_AAPL.json"), httpx.Response(502)]
        )
        fmp = router.get(f"{FMP}/batch-quote").mock(side_effect=fmp_quotes)
        first = await chain.quotes(["AAPL"])
        second = await chain.quotes(["AAPL"])
    assert first["AAPL"].price == second["AAPL"].price == 272.11
    assert (finnhub.call_count, fmp.call_count) == (2, 1)


@pytest.mark.anyio
async def test_a_429_skips_the_provider_until_its_retry_after(chain, clock):
    limited = httpx.Response(429, headers={"Retry-After": "30"}, json={"error": "limit"})
    with respx.mock(assert_all_mocked=True) as router:
        finnhub = router.get(f"{FINNHUB}/quote").mock(
            side_effect=[limited, ok("finnhub", "quote_AAPL.json")]
        )
        fmp = router.get(f"{FMP}/batch-quote").mock(side_effect=fmp_quotes)
        await chain.quotes(["AAPL"])
        clock.advance(10)
        await chain.quotes(["AAPL"])
        assert chain.cooling_down() == ["finnhub"]
        clock.advance(25)
        await chain.quotes(["AAPL"])
    assert (finnhub.call_count, fmp.call_count) == (2, 2)
    assert chain.cooling_down() == []


@pytest.mark.anyio
async def test_a_refused_key_is_not_retried_on_every_poll(chain, clock):
    refused = httpx.Response(401, json=fixture_json("finnhub", "error_invalid_key.json"))
    with respx.mock(assert_all_mocked=True) as router:
        finnhub = router.get(f"{FINNHUB}/quote").mock(refused)
        router.get(f"{FMP}/batch-quote").mock(side_effect=fmp_quotes)
        for _ in range(5):
            await chain.quotes(["AAPL"])
            clock.advance(60)
    assert finnhub.call_count == 1


@pytest.mark.anyio
async def test_a_missing_capability_goes_to_the_next_provider(clock):
    chain = FailoverProvider([make_fmp(clock), make_finnhub(clock)], clock=clock)
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/stock/price-target").mock(ok("finnhub", "price_target.json"))
        targets = await chain.price_targets("LUMN")
    await chain.aclose()
    assert targets is not None and targets.median == 7.56
    assert chain.cooling_down() == []


@pytest.mark.anyio
async def test_when_every_provider_fails_the_last_error_is_raised(chain):
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/calendar/earnings").mock(side_effect=httpx.ConnectError)
        router.get(f"{FMP}/earnings-calendar").mock(httpx.Response(503))
        with pytest.raises(ProviderUnavailable) as caught:
            await chain.earnings(date(2026, 2, 3), date(2026, 2, 3), ["LUMN"])
    assert caught.value.provider == "fmp"


@pytest.mark.anyio
async def test_unsupported_everywhere_is_unsupported(clock):
    chain = FailoverProvider([make_fmp(clock)], clock=clock)
    with pytest.raises(ProviderUnsupported):
        await chain.price_targets("LUMN")
    await chain.aclose()


@pytest.mark.anyio
async def test_five_failures_in_a_row_open_the_circuit_for_30_seconds(chain, clock):
    with respx.mock(assert_all_mocked=True) as router:
        finnhub = router.get(f"{FINNHUB}/quote").mock(httpx.Response(500))
        router.get(f"{FMP}/batch-quote").mock(side_effect=fmp_quotes)
        for _ in range(8):
            await chain.quotes(["AAPL"])
        assert finnhub.call_count == 5
        clock.advance(31)
        finnhub.mock(ok("finnhub", "quote_AAPL.json"))
        await chain.quotes(["AAPL"])
    assert finnhub.call_count == 6 and chain.cooling_down() == []


def settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


def test_the_registry_names_each_class_by_its_name():
    assert list(PROVIDERS) == ["finnhub", "fmp", "nasdaq", "replay", "replay-b"]
    assert all(cls.name == name for name, cls in PROVIDERS.items())  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_build_providers_follows_earnwatch_providers_in_order(monkeypatch):
    monkeypatch.setenv("FINNHUB_API_KEY", "k1")
    monkeypatch.setenv("FMP_API_KEY", "k2")
    chain = build_providers(settings(providers="nasdaq, FMP,finnhub,replay"))
    assert [p.name for p in chain.providers] == ["nasdaq", "fmp", "finnhub", "replay"]
    await chain.aclose()


def test_an_unknown_provider_names_the_variable_and_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        build_providers(settings(providers="finnhub,yahoo"))
    assert str(caught.value) == (
        "EARNWATCH_PROVIDERS: unknown provider 'yahoo'; "
        "known providers: finnhub, fmp, nasdaq, replay, replay-b"
    )


def test_finnhub_without_a_key_names_finnhub_api_key(monkeypatch):
    monkeypatch.delenv("FINNHUB_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"^FINNHUB_API_KEY: required"):
        build_providers(settings())


class Unasked:
    """A provider that records every call it gets and serves none."""

    name = "unasked"
    max_batch = 1

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def price_targets(self, symbol: str) -> None:
        self.calls.append("price_targets")
        raise ProviderUnsupported(self.name, "price targets are not provided")

    async def aclose(self) -> None:
        return None


@pytest.mark.anyio
async def test_a_capability_not_declared_is_skipped_without_a_call(clock):
    unasked = Unasked()
    serves = {"unasked": frozenset({Capability.QUOTES, Capability.EARNINGS})}
    chain = FailoverProvider([unasked, make_finnhub(clock)], clock=clock, serves=serves)  # type: ignore[list-item]
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/stock/price-target").mock(ok("finnhub", "price_target.json"))
        targets = await chain.price_targets("LUMN")
    alone = FailoverProvider([unasked], clock=clock, serves=serves)  # type: ignore[list-item]
    with pytest.raises(ProviderUnsupported) as caught:
        await alone.price_targets("LUMN")
    await chain.aclose()
    assert targets is not None and targets.median == 7.56
    assert unasked.calls == [] and caught.value.provider == "unasked"


@pytest.mark.anyio
async def test_build_providers_passes_the_declared_capabilities(monkeypatch, clock):
    monkeypatch.setenv("FINNHUB_API_KEY", "k1")
    monkeypatch.setenv("FMP_API_KEY", "k2")
    chain = build_providers(settings(providers="fmp,finnhub"), clock=clock)
    fmp_provider = chain.providers[0]
    asked: list[str] = []

    async def spy(symbol: str) -> None:
        asked.append(symbol)

    monkeypatch.setattr(fmp_provider, "price_targets", spy)
    with respx.mock(assert_all_mocked=True) as router:
        router.get("https://finnhub.io/api/v1/stock/price-target").mock(
            ok("finnhub", "price_target.json")
        )
        targets = await chain.price_targets("LUMN")
    await chain.aclose()
    assert targets is not None and asked == []


@pytest.mark.anyio
async def test_a_second_opinion_comes_from_another_provider_than_the_source(chain):
    """EARNWATCH_CONFIRM=2: `served` names who answered the calendar, and
    `earnings_besides` asks the next provider serving earnings, never the source."""
    with respx.mock(assert_all_mocked=True) as router:
        finnhub = router.get(f"{FINNHUB}/calendar/earnings").mock(
            return_value=httpx.Response(200, json={"earningsCalendar": []})
        )
        fmp = router.get(f"{FMP}/earnings-calendar").mock(return_value=httpx.Response(200, json=[]))
        await chain.earnings(date(2026, 11, 2), date(2026, 11, 4), ["LUMN"])
        assert chain.served[Capability.EARNINGS] == "finnhub"
        name, rows = await chain.earnings_besides(
            "finnhub", date(2026, 11, 2), date(2026, 11, 4), ["LUMN"]
        )
        assert (name, rows) == ("fmp", [])
        assert chain.served[Capability.EARNINGS] == "finnhub"  # a second opinion is not recorded
        # the source failing over to FMP: the second opinion is Finnhub's
        name, _rows = await chain.earnings_besides(
            "fmp", date(2026, 11, 2), date(2026, 11, 4), ["LUMN"]
        )
    assert name == "finnhub" and (finnhub.call_count, fmp.call_count) == (2, 1)
