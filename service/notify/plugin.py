"""What a channel type declares about itself, once, and the contract every declaration keeps.

A channel type is one module under `service/notify/` that ends with one `CHANNEL =
ChannelType(...)`: its notifier class (which names its `kind` and its `Config` model),
the config fields that are URLs Earnwatch connects to, the fields that are secrets, and the
factory that builds its notifier from a `NotifierContext`. Everything else reads those
declarations: the rule loader validates `channels:` entries against `config`, the SSRF
guard checks every URL field at `check` time and on each reload (and the guarded client
again at connect time), the log mask and the error scrubber take every secret field, and
`build_notifiers` calls each factory. So a new channel cannot miss the SSRF check or the
mask: `ChannelType.problems()` refuses a declaration that leaves a URL-like or a
`SecretStr` field undeclared, and the registry refuses one (at its first lookup).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from service.config import Settings
from service.httpclient import TargetGuard
from service.notify.base import ChannelConfig, Notifier

if TYPE_CHECKING:  # ssl loads with a client or a mail, not with the registry
    import ssl

    from service.h11client import H11Client

_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
#: Field names that say "a URL": such a field must be declared in `url_fields`.
_URL_NAME = re.compile(r"(^|_)(url|uri|endpoint)$")
#: Field names that say "a secret": such a field must be declared in `secret_fields`.
_SECRET_NAME = re.compile(r"(^|_)(token|secret|password|key|api_key)$")


@dataclass(frozen=True, slots=True)
class NotifierContext:
    """What a channel's factory may build its notifier from."""

    settings: Settings
    guard: TargetGuard  # the SSRF policy, applied again at connect time
    timeout: float  # seconds for one connect or read
    deadline: float  # seconds one send may take in all (EARNWATCH_DELIVERY_TIMEOUT)
    smtp_ssl_context: ssl.SSLContext | None = None

    def http_client(self) -> H11Client:
        """A new guarded client (HTTP/1.1 on h11, no httpx); the notifier owns it and
        closes it in `aclose()`."""
        from service.h11client import H11Client

        return H11Client(timeout=self.timeout, guard=self.guard)


@dataclass(frozen=True, slots=True)
class ChannelType:
    """One channel type, declared in its own module."""

    notifier: type[Notifier]
    url_fields: frozenset[str]
    secret_fields: frozenset[str]
    build: Callable[[NotifierContext], Notifier]
    #: Valid options with every field of this type set (placeholder values; the fields of
    #: `ChannelConfig` every type shares may be left out): for the contract tests, which
    #: set each URL field to a refused address and look for each secret in logs.
    example: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return self.notifier.kind

    @property
    def config(self) -> type[ChannelConfig]:
        return self.notifier.Config

    def urls(self, config: ChannelConfig) -> Iterator[tuple[str, str]]:
        """(field, URL) of every URL field set in `config`, defaults included."""
        for name in sorted(self.url_fields):
            value = getattr(config, name, None)
            if value is not None:
                yield name, _plain(value)

    def secrets(self, config: ChannelConfig) -> Iterator[str]:
        """Every secret value in `config` (also inside a mapping or list, such as headers)."""
        for name in sorted(self.secret_fields):
            yield from _values(getattr(config, name, None))

    def problems(self) -> list[str]:
        """What is wrong with this declaration ([] for a sound one)."""
        kind = getattr(self.notifier, "kind", "")
        config = getattr(self.notifier, "Config", None)
        where = f"channel type {kind or self.notifier.__name__!r}"
        if not isinstance(kind, str) or not _KIND.match(kind):
            return [f"{where}: `kind` must be a lower-case name"]
        if not (isinstance(config, type) and issubclass(config, ChannelConfig)):
            return [f"{where}: `Config` must be a ChannelConfig model"]
        found: list[str] = []
        fields = config.model_fields
        for name in sorted((self.url_fields | self.secret_fields) - fields.keys()):
            found.append(f"{where}: declares {name!r}, which is not a field of its config")
        # A field of the base (quiet_hours) is every channel's, not this type's: its own
        # tests cover it, so a new channel type need not repeat it in its example.
        own = fields.keys() - ChannelConfig.model_fields.keys()
        for name in sorted(own - self.example.keys()):
            found.append(f"{where}: its example leaves field {name!r} out")
        for name, field in fields.items():
            secret_typed = _holds_secret(field.annotation)
            if secret_typed and name not in self.secret_fields:
                found.append(f"{where}: field {name!r} is a SecretStr but not in secret_fields")
            if _SECRET_NAME.search(name) and name not in self.secret_fields:
                found.append(f"{where}: field {name!r} looks like a secret: declare it")
            if name in self.secret_fields and not secret_typed:
                found.append(f"{where}: secret field {name!r} must be typed SecretStr")
            if _URL_NAME.search(name) and name not in self.url_fields:
                found.append(f"{where}: field {name!r} looks like a URL: declare it")
        return found


def registry(*declared: ChannelType) -> Mapping[str, ChannelType]:
    """The channel types by kind; raises TypeError for an unsound or repeated declaration,
    so a channel that forgets a declaration fails at its first lookup (`service/plugins.py`)
    and in the contract test."""
    out: dict[str, ChannelType] = {}
    for channel in declared:
        problems = channel.problems()
        if channel.kind in out:
            problems.append(f"channel type {channel.kind!r} is declared twice")
        if problems:
            raise TypeError("; ".join(problems))
        out[channel.kind] = channel
    return types.MappingProxyType(out)


def _holds_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_holds_secret(arg) for arg in typing.get_args(annotation))


def _plain(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _values(value: object) -> Iterable[str]:
    if value is None:
        return
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _values(item)
    else:
        text = _plain(value)
        if text:
            yield text
