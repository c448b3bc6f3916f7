"""Market-data providers: the registry, and the failover chain built from settings.

`EARNWATCH_PROVIDERS` lists provider names in order (default `finnhub`); each call goes to
the first that can serve it (`FailoverProvider`). A new provider is one module plus one
line in `PROVIDERS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Final, Protocol

from pydantic import SecretStr

from service.clock import Clock
from service.config import Settings
from service.errors import ConfigError
from service.providers.base import Provider
from service.providers.failover import FailoverProvider
from service.providers.finnhub import FinnhubProvider
from service.providers.fmp import FmpProvider
from service.providers.limiter import RateLimiter, finnhub_limiter, fmp_limiter, nasdaq_limiter
from service.providers.nasdaq import NasdaqProvider
from service.providers.replay import ReplayProvider


class ProviderClass(Protocol):
    """What the registry holds: a provider class built from settings."""

    max_batch: int

    def from_settings(self, settings: Settings, *, clock: Clock | None = None) -> Provider: ...


PROVIDERS: Final[Mapping[str, ProviderClass]] = {
    "finnhub": FinnhubProvider,
    "fmp": FmpProvider,
    "nasdaq": NasdaqProvider,
    "replay": ReplayProvider,
}

#: The variable holding each provider's key, for those that need one.
KEYS: Final[Mapping[str, str]] = {"finnhub": "FINNHUB_API_KEY", "fmp": "FMP_API_KEY"}

#: Each provider's client-side limiter (its free tier); a provider absent here has none.
LIMITERS: Final[Mapping[str, Callable[[], RateLimiter]]] = {
    "finnhub": finnhub_limiter,
    "fmp": fmp_limiter,
    "nasdaq": nasdaq_limiter,
}
#: Prices older than this many refresh periods (plus one call's deadline) are stale.
STALE_PERIODS: Final = 3

__all__ = [
    "KEYS",
    "PROVIDERS",
    "FailoverProvider",
    "Provider",
    "build_providers",
    "prices_stale_after",
    "quote_refresh_period",
]


def quote_refresh_period(
    provider_names: Sequence[str], n_symbols: int, price_poll: timedelta
) -> timedelta:
    """How often the first provider listed can refresh the prices of `n_symbols` symbols
    within its budget, and never more often than `price_poll`.

    A pass costs `ceil(n / max_batch)` calls, and the provider's limiter allows its
    narrowest rate in the long run: Finnhub's free tier (one symbol a call, 60 calls in 62 s)
    needs about 8.6 minutes for 500 symbols; FMP (100 a call, 250 calls a day) about 6
    minutes per call; Nasdaq (25 a call, one call a second) 20 s. The failover providers
    behind the first serve only while it fails, so they do not set the pace.
    """
    name = provider_names[0] if provider_names else ""
    provider = PROVIDERS.get(name)
    limiter = LIMITERS.get(name)
    if provider is None or limiter is None or n_symbols <= 0:
        return price_poll
    calls = math.ceil(n_symbols / max(1, provider.max_batch))
    per_second = min(rate.calls / rate.per for rate in limiter().rates)
    return max(price_poll, timedelta(seconds=calls / per_second))


def prices_stale_after(
    provider_names: Sequence[str], n_symbols: int, interval: timedelta, deadline: timedelta
) -> timedelta:
    """When a watched symbol's price counts as stale for `/healthz`: `STALE_PERIODS`
    refresh periods (see `quote_refresh_period`, with the poll interval in force), plus one
    call's deadline for a pass that ends in a timeout."""
    return STALE_PERIODS * quote_refresh_period(provider_names, n_symbols, interval) + deadline


def build_providers(settings: Settings, *, clock: Clock | None = None) -> FailoverProvider:
    """The providers of `settings.provider_names`, in order, behind one FailoverProvider.

    Raises ConfigError naming EARNWATCH_PROVIDERS for an unknown or empty list, and naming
    the key variable when a listed provider needs a key that is not set.
    """
    names = settings.provider_names
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown or not names:
        known = ", ".join(PROVIDERS)
        what = f"unknown provider {unknown[0]!r}" if unknown else "no provider listed"
        raise ConfigError(f"EARNWATCH_PROVIDERS: {what}; known providers: {known}")
    # Keys are checked before any client is built, so a ConfigError leaves none open.
    for name in names:
        variable = KEYS.get(name)
        if variable and not _is_set(getattr(settings, variable.lower())):
            raise ConfigError(f"{variable}: required when EARNWATCH_PROVIDERS lists {name}")
    built = [PROVIDERS[name].from_settings(settings, clock=clock) for name in dict.fromkeys(names)]
    return FailoverProvider(built, clock=clock)


def _is_set(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value().strip())
