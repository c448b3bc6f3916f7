"""Market-data providers: the registry, and the failover chain built from settings.

`EARNWATCH_PROVIDERS` lists provider names in order (default `finnhub`); each call goes to
the first that can serve it (`FailoverProvider`). A new provider is one module plus one
line in `PROVIDERS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

from pydantic import SecretStr

from service.clock import Clock
from service.config import Settings
from service.errors import ConfigError
from service.providers.base import Provider
from service.providers.failover import FailoverProvider
from service.providers.finnhub import FinnhubProvider
from service.providers.fmp import FmpProvider
from service.providers.nasdaq import NasdaqProvider
from service.providers.replay import ReplayProvider


class ProviderClass(Protocol):
    """What the registry holds: a provider class built from settings."""

    def from_settings(self, settings: Settings, *, clock: Clock | None = None) -> Provider: ...


PROVIDERS: Final[Mapping[str, ProviderClass]] = {
    "finnhub": FinnhubProvider,
    "fmp": FmpProvider,
    "nasdaq": NasdaqProvider,
    "replay": ReplayProvider,
}

#: The variable holding each provider's key, for those that need one.
KEYS: Final[Mapping[str, str]] = {"finnhub": "FINNHUB_API_KEY", "fmp": "FMP_API_KEY"}

__all__ = ["KEYS", "PROVIDERS", "FailoverProvider", "Provider", "build_providers"]


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
