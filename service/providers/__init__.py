"""Market-data providers: the registry, and the failover chain built from settings.

`EARNWATCH_PROVIDERS` lists provider names in order (default `finnhub`); each call goes to
the first that can serve it (`FailoverProvider`). A new provider is one module declaring
its `PROVIDER = ProviderType(...)` (service/providers/plugin.py) plus one line in
`PROVIDER_MODULES`. `PROVIDERS` imports a provider's module with its first lookup
(`service/plugins.py`): a daemon loads the providers EARNWATCH_PROVIDERS lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Final

from service.clock import Clock
from service.config import Settings
from service.errors import ConfigError
from service.plugins import Plugins
from service.providers.base import Provider
from service.providers.failover import FailoverProvider
from service.providers.plugin import Capability, ProviderType, declaration_problems

#: Every provider by name, in the order `known providers` lists them, and where its
#: declaration is: one line per provider.
PROVIDER_MODULES: Final[Mapping[str, str]] = {
    "finnhub": "service.providers.finnhub:PROVIDER",
    "fmp": "service.providers.fmp:PROVIDER",
    "nasdaq": "service.providers.nasdaq:PROVIDER",
    "replay": "service.providers.replay:PROVIDER",
    "replay-b": "service.providers.replay:SECOND_PROVIDER",
}


def registry(*declared: ProviderType) -> Mapping[str, ProviderType]:
    """The providers by name; raises TypeError for an unsound or repeated declaration, so
    a provider that forgets a declaration fails at its first lookup (`service/plugins.py`)
    and in the contract test."""
    out: dict[str, ProviderType] = {}
    for ptype in declared:
        problems = declaration_problems(ptype)
        if ptype.name in out:
            problems.append("declared twice")
        if problems:
            raise TypeError(f"provider {ptype.name!r}: " + "; ".join(problems))
        out[ptype.name] = ptype
    return MappingProxyType(out)


def _checked(name: str, ptype: ProviderType) -> None:
    """Raises TypeError for an unsound declaration, or one of another name than its own."""
    registry(ptype)
    if ptype.name != name:
        raise TypeError(f"provider {name!r}: its module declares {ptype.name!r}")


PROVIDERS: Final[Plugins[ProviderType]] = Plugins(PROVIDER_MODULES, ProviderType, _checked)

#: Prices older than this many refresh periods (plus one call's deadline) are stale.
STALE_PERIODS: Final = 3

__all__ = [
    "PROVIDERS",
    "FailoverProvider",
    "Provider",
    "ProviderType",
    "build_providers",
    "confirmation_problem",
    "prices_stale_after",
    "quote_refresh_period",
]


def quote_refresh_period(
    provider_names: Sequence[str], n_symbols: int, price_poll: timedelta
) -> timedelta:
    """How often the first provider listed can refresh the prices of `n_symbols` symbols
    within its budget, and never more often than `price_poll`.

    A pass costs `ceil(n / max_batch)` calls, and the provider's declared rates allow the
    narrowest one in the long run: Finnhub's free tier (one symbol a call, 60 calls in 62 s)
    needs about 8.6 minutes for 500 symbols; FMP (100 a call, 250 calls a day) about 6
    minutes per call; Nasdaq (25 a call, one call a second) 20 s. The failover providers
    behind the first serve only while it fails, so they do not set the pace.
    """
    ptype = PROVIDERS.get(provider_names[0]) if provider_names else None
    if ptype is None or not ptype.rates or n_symbols <= 0:
        return price_poll
    calls = math.ceil(n_symbols / max(1, ptype.max_batch))
    per_second = min(rate.calls / rate.per for rate in ptype.rates)
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
    if (problem := confirmation_problem(settings)) is not None:
        raise ConfigError(problem)
    types = [PROVIDERS[name] for name in dict.fromkeys(names)]
    # Keys are checked before any client is built, so a ConfigError leaves none open.
    for ptype in types:
        if ptype.key is not None:
            ptype.api_key(settings)
    built = [ptype.factory(settings, clock) for ptype in types]
    serves = {ptype.name: ptype.capabilities for ptype in types}
    return FailoverProvider(built, clock=clock, serves=serves)


def earnings_providers(settings: Settings) -> list[str]:
    """The providers of EARNWATCH_PROVIDERS that carry earnings figures, in order."""
    names = [n for n in dict.fromkeys(settings.provider_names) if n in PROVIDERS]
    return [n for n in names if Capability.EARNINGS in PROVIDERS[n].capabilities]


def confirmation_problem(settings: Settings) -> str | None:
    """The one-line error of EARNWATCH_CONFIRM=2 with fewer than two providers carrying
    earnings figures (`check` and startup print it), or None."""
    if settings.confirm_wait_if_on is None:
        return None
    carrying = earnings_providers(settings)
    if len(carrying) >= 2:
        return None
    listed = ", ".join(carrying) or "none"
    return (
        "EARNWATCH_CONFIRM=2: needs at least two providers with earnings figures in "
        f"EARNWATCH_PROVIDERS (e.g. finnhub,fmp); it lists {listed}"
    )
