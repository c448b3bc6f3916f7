"""Every exception Earnwatch raises on purpose, and nothing else.

```
EarnwatchError
├── ConfigError            bad or missing setting; names the variable
├── RuleFileError          .source, .problems: every Problem(line, col, path, message)
├── ProviderError          .provider, .retryable
│   ├── ProviderAuthError          401/403: permanent; names the variable to set
│   ├── ProviderRateLimited        429: .retry_after
│   ├── ProviderUnavailable        5xx, timeout, network
│   ├── ProviderDataError          malformed payload, HTTP 200 with an error note
│   └── ProviderUnsupported        the provider lacks this capability
├── DeliveryError          .permanent, .retry_after, .status (raised by notifiers only)
├── UnsafeTargetError      a URL resolves to an address the SSRF guard refuses
└── StoreError             migration needed, lost leadership, unreachable database
```

Messages are one line, name the place, and never hold a secret: callers may log
`str(exc)` as it is.
"""

from __future__ import annotations

from dataclasses import dataclass


class EarnwatchError(Exception):
    """Base of every error Earnwatch raises on purpose."""


class ConfigError(EarnwatchError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One mistake in a rule file, at a 1-based line and column."""

    line: int
    col: int
    path: str
    message: str

    def format(self, source: str) -> str:
        where = f"{self.path}: " if self.path else ""
        if self.line <= 0:  # about the file as a whole (it is empty, say): `PATH: message`
            return f"{source}: {where}{self.message}"
        return f"{source}:{self.line}:{self.col}: {where}{self.message}"


class RuleFileError(EarnwatchError):
    """A rule file was refused as a whole; `problems` lists every mistake in it."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(problems)
        first = self.problems[0].format(source) if self.problems else f"{source}: invalid"
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))

    def lines(self) -> list[str]:
        """Every problem as `PATH:LINE:COL: message`, sorted by position."""
        return [p.format(self.source) for p in self.problems]


class ProviderError(EarnwatchError):
    """A market-data call failed; `retryable` says whether trying later may help."""

    retryable: bool = True

    def __init__(self, provider: str, message: str) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {message}")


class ProviderAuthError(ProviderError):
    """The provider refused the key (401/403). Permanent until the key is fixed."""

    retryable = False


class ProviderRateLimited(ProviderError):
    """The provider answered 429; `retry_after` is in seconds when it said so."""

    def __init__(self, provider: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(provider, message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """5xx, timeout or network failure."""


class ProviderDataError(ProviderError):
    """The payload is malformed, or an HTTP 200 carries an error note."""


class ProviderUnsupported(ProviderError):
    """The provider has no such capability (e.g. no price targets)."""

    retryable = False


class DeliveryError(EarnwatchError):
    """One delivery attempt failed. Raised by notifiers; `delivery.py` decides what next."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status


class UnsafeTargetError(EarnwatchError):
    """A notification URL points at an address the SSRF guard refuses."""


class StoreError(EarnwatchError):
    """The database is unreachable, needs a migration, or leadership was lost."""
