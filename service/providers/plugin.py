"""A market-data provider as the registry knows it: one `ProviderType` per provider module.

Each provider module declares `PROVIDER = ProviderType(...)` once: its name, the settings
it reads (its key and base URL, by environment variable and `Settings` field), its free-tier
rates, symbols per quote call, the calls it can serve and the factory that builds it. The
registry (`service.providers.PROVIDERS`), the key check of `build_providers`, every
limiter and `quote_refresh_period` read these declarations, so a provider's facts are
written down in one place. `declaration_problems()` checks a declaration against
`Settings` (the contract test runs it over the registry): a key that is not a secret
field would not be masked in logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from pydantic import SecretStr

from service.clock import Clock
from service.config import SECRET_FIELDS, Settings
from service.errors import ConfigError
from service.providers.base import Provider
from service.providers.limiter import Rate, RateLimiter


class Capability(StrEnum):
    """A call a provider can serve; each value is the name of its `Provider` method."""

    QUOTES = "quotes"
    EARNINGS = "earnings"
    PRICE_TARGETS = "price_targets"


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting a provider reads: its environment variable and the `Settings` field
    that holds it (`Setting("FINNHUB_API_KEY", "finnhub_api_key")`)."""

    env: str
    field: str


class CalendarCost(Protocol):
    """The fewest calls a calendar read of `days` days and `symbols` symbols costs."""

    def __call__(self, days: int, symbols: int) -> int: ...


class Factory(Protocol):
    """Builds a provider from the settings, on `clock` (None: the system clock). A keyed
    provider's factory takes its key from `ProviderType.api_key()` before it opens a
    client, so a missing key raises ConfigError and leaves nothing open."""

    def __call__(self, settings: Settings, clock: Clock | None) -> Provider: ...


@dataclass(frozen=True, slots=True)
class ProviderType:
    """Everything the registry needs to know about one provider."""

    name: str  # in EARNWATCH_PROVIDERS, logs, metrics and every ProviderError
    factory: Factory
    capabilities: frozenset[Capability]
    max_batch: int  # symbols per quote call; `quotes()` chunks by itself
    key: Setting | None = None  # None: keyless
    base_url: Setting | None = None
    #: The limiter's sliding windows (the free tier); none: no client-side pacing.
    rates: tuple[Rate, ...] = ()
    #: The longest wait the limiter sleeps through before failing over (None: its default).
    max_wait: float | None = None
    #: The trade stream's URL setting (None: this provider has no stream).
    stream_url: Setting | None = None
    #: Calls one calendar read of (days, symbols) costs at least, for `check --budget`
    #: (None: one call per symbol).
    calendar_calls: CalendarCost | None = None

    def api_key(self, settings: Settings) -> SecretStr:
        """The key set for this provider. Raises ConfigError naming its variable when the
        key is unset or blank (the one check every keyed provider goes through)."""
        if self.key is None:
            raise ValueError(f"{self.name} declares no key")
        value = getattr(settings, self.key.field, None)
        if not isinstance(value, SecretStr) or not value.get_secret_value().strip():
            raise ConfigError(
                f"{self.key.env}: required when EARNWATCH_PROVIDERS lists {self.name}"
            )
        return value

    def base_url_of(self, settings: Settings) -> str:
        """The API root from the settings, ending in `/` (httpx joins paths onto it)."""
        if self.base_url is None:
            raise ValueError(f"{self.name} declares no base URL")
        value = getattr(settings, self.base_url.field, None)
        if not isinstance(value, str):
            raise ConfigError(f"{self.base_url.env}: not set")
        return value.rstrip("/") + "/"

    def limiter(self, clock: Clock | None = None) -> RateLimiter:
        """A fresh limiter over the declared rates (with none it only keeps 429 pauses)."""
        if self.max_wait is None:
            return RateLimiter(self.name, self.rates, clock=clock)
        return RateLimiter(self.name, self.rates, clock=clock, max_wait=self.max_wait)


def _alias_problem(setting: Setting, what: str) -> str | None:
    field = Settings.model_fields.get(setting.field)
    if field is None:
        return f"{what} field {setting.field!r} is not a Settings field"
    if field.validation_alias != setting.env:
        return (
            f"{what} field {setting.field!r} is read from {field.validation_alias!r}, "
            f"not {setting.env!r}"
        )
    return None


def declaration_problems(ptype: ProviderType) -> list[str]:
    """What is wrong with a declaration, one sentence each; [] when nothing is.

    The key must be a `SecretStr` field of Settings read from the declared variable, so
    that `Settings.secrets()` (and so the log mask) includes it; the base URL a field read
    from its variable; rates, `max_batch` and `max_wait` positive; at least one capability.
    """
    problems: list[str] = []
    if not ptype.name or ptype.name != ptype.name.strip().lower() or "," in ptype.name:
        problems.append(f"name {ptype.name!r} is not a lower-case word")
    if ptype.key is not None:
        if (problem := _alias_problem(ptype.key, "key")) is not None:
            problems.append(problem)
        elif ptype.key.field not in SECRET_FIELDS:
            problems.append(f"key field {ptype.key.field!r} is not a SecretStr (never masked)")
        else:
            probe = f"probe-{ptype.name}-0123456789"
            values: dict[str, Any] = {ptype.key.field: SecretStr(probe)}
            settings = Settings.model_construct(**values)
            if probe not in settings.secrets():
                problems.append(f"key field {ptype.key.field!r} is missing from secrets()")
    if ptype.base_url is not None and (problem := _alias_problem(ptype.base_url, "base URL")):
        problems.append(problem)
    if ptype.stream_url is not None and (problem := _alias_problem(ptype.stream_url, "stream")):
        problems.append(problem)
    for rate in ptype.rates:
        if rate.calls < 1 or not rate.per > 0:
            problems.append(f"rate {rate} is not positive")
    if ptype.max_batch < 1:
        problems.append(f"max_batch {ptype.max_batch} is below 1")
    if ptype.max_wait is not None and not ptype.max_wait > 0:
        problems.append(f"max_wait {ptype.max_wait} is not positive")
    if not ptype.capabilities:
        problems.append("no capability declared")
    return problems
