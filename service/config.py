"""Settings from the environment and `.env`, read once, validated once, passed down.

This is the only module that reads the environment. Vendor keys keep their usual names
(`FINNHUB_API_KEY`); our own settings use the `EARNWATCH_` prefix. A bad setting is a
`ConfigError` with one line per variable and never the value (it may be a secret).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from service.durations import parse_duration
from service.errors import ConfigError

DEFAULT_RULES_MAX_BYTES: Final = 20_000_000
#: The longest duration a setting may hold: beyond it the scheduler's arithmetic on dates
#: overflows, and no interval or age of Earnwatch's is meant to be longer.
MAX_SETTING_DURATION: Final = timedelta(days=365)
_HOST_PORT: Final = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]/]*)):(?P<port>\d{1,5})$"
)
HTTP_HINT: Final = "expected HOST:PORT (127.0.0.1:8787, [::1]:8787, :8787) or off"
#: Our own settings are read from `EARNWATCH_<FIELD>`; a field with a `validation_alias`
#: (the vendors' usual names: FINNHUB_API_KEY, SMTP_HOST, ...) from that name alone.
ENV_PREFIX: Final = "EARNWATCH_"


class Settings(BaseModel):
    """Every setting, with its default. `.env.example` documents each one.

    `Settings(**values)` reads the settings as `load_settings` does (without its
    `ConfigError`): the keyword values over the process environment over `_env_file`."""

    # Defaults are validated too (the `http` and `log_level` defaults go through their
    # validators), and names that are no setting are ignored.
    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    def __init__(self, /, *, _env_file: str | Path | None = ".env", **values: Any) -> None:
        super().__init__(**_sourced(_env_file, values))

    # --- rule file, storage, process -------------------------------------------------
    rules: Path = Path("rules.yaml")
    rules_max_bytes: int = Field(DEFAULT_RULES_MAX_BYTES, ge=1)
    database_url: str = "sqlite:///earnwatch.db"
    http: str = "127.0.0.1:8787"
    #: Needed to serve the status page on a non-loopback EARNWATCH_HTTP (service/web.py).
    http_token: SecretStr | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    shutdown_grace: timedelta = timedelta(seconds=10)
    failover: timedelta = timedelta(seconds=15)

    # --- market data -----------------------------------------------------------------
    providers: str = "finnhub"
    finnhub_api_key: SecretStr | None = Field(None, validation_alias="FINNHUB_API_KEY")
    fmp_api_key: SecretStr | None = Field(None, validation_alias="FMP_API_KEY")
    finnhub_base_url: str = Field("https://finnhub.io/api/v1", validation_alias="FINNHUB_BASE_URL")
    fmp_base_url: str = Field(
        "https://financialmodelingprep.com/stable", validation_alias="FMP_BASE_URL"
    )
    nasdaq_base_url: str = Field("https://api.nasdaq.com/api", validation_alias="NASDAQ_BASE_URL")
    http_timeout: timedelta = timedelta(seconds=10)
    # Finnhub's trade stream (service/providers/finnhub_stream.py): "" means finnhub when
    # finnhub is listed with a key, else off.
    stream: Literal["", "finnhub", "off"] = ""
    finnhub_stream_url: str = Field("wss://ws.finnhub.io", validation_alias="FINNHUB_STREAM_URL")
    stream_symbols: int = Field(50, ge=0)
    stream_idle: timedelta = timedelta(seconds=60)
    # Cross-provider confirmation (service/confirm.py): "2" asks a second provider for
    # a report's actuals before they count as reported; "off" (default) does not.
    confirm: Literal["off", "2"] = "off"
    confirm_wait: timedelta = timedelta(minutes=10)

    # --- schedule --------------------------------------------------------------------
    calendar_refresh: timedelta = timedelta(hours=6)
    price_poll: timedelta = timedelta(seconds=60)
    off_hours_poll: timedelta = timedelta(minutes=15)
    earnings_poll: timedelta = timedelta(seconds=30)
    rules_watch: timedelta = timedelta(seconds=1)

    # --- delivery --------------------------------------------------------------------
    delivery_concurrency: int = Field(16, ge=1)  # = delivery.DEFAULT_CONCURRENCY
    delivery_max_attempts: int = Field(12, ge=1)
    delivery_max_age: timedelta = timedelta(hours=24)
    delivery_lease: timedelta = timedelta(minutes=2)
    # A send's total deadline (connect, request, reply body) and the sends in flight per
    # destination host; see service/delivery.py.
    delivery_timeout: timedelta = timedelta(seconds=10)
    delivery_per_host: int = Field(8, ge=1)  # = delivery.DEFAULT_PER_HOST
    slack_interval: timedelta = timedelta(seconds=1)
    allow_private_targets: bool = False
    allowed_hosts: str = ""

    # --- heartbeat (dead man's switch; service/heartbeat.py) -------------------------
    heartbeat_url: SecretStr | None = None
    heartbeat_interval: timedelta = timedelta(minutes=5)

    # --- email (SMTP) ----------------------------------------------------------------
    smtp_host: str | None = Field(None, validation_alias="SMTP_HOST")
    smtp_port: int | None = Field(None, validation_alias="SMTP_PORT")
    smtp_username: str | None = Field(None, validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    smtp_from: str = Field("earnwatch@localhost", validation_alias="SMTP_FROM")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", validation_alias="SMTP_SECURITY"
    )
    smtp_timeout: timedelta = Field(timedelta(seconds=30), validation_alias="SMTP_TIMEOUT")

    @field_validator(
        "shutdown_grace",
        "failover",
        "http_timeout",
        "calendar_refresh",
        "price_poll",
        "off_hours_poll",
        "earnings_poll",
        "rules_watch",
        "delivery_max_age",
        "delivery_lease",
        "delivery_timeout",
        "slack_interval",
        "smtp_timeout",
        "heartbeat_interval",
        "stream_idle",
        "confirm_wait",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                parsed = parse_duration(value, bare_seconds=True)
            except OverflowError:
                parsed = timedelta.max
            except ValueError as exc:  # its text quotes the value: say what is wrong only
                if "too long" in str(exc):
                    parsed = timedelta.max
                else:
                    raise ValueError(
                        "not a duration: write it like 30s, 10m, 4h or 2d (at most 365d)"
                    ) from None
            if parsed > MAX_SETTING_DURATION:
                raise ValueError("duration too long: at most 365d")
            return parsed
        return value

    @field_validator("http")
    @classmethod
    def _http(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in ("", "off"):
            return value.lower()
        parse_host_port(value)
        return value

    @field_validator("http_token")
    @classmethod
    def _http_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # empty: no token
        if any(c.isspace() or not c.isprintable() for c in value.get_secret_value()):
            raise ValueError("must be printable, without spaces (it is sent in a header)")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.strip().upper() not in logging.getLevelNamesMapping():
            raise ValueError("unknown log level: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.strip().upper()

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        try:
            parts = urlsplit(value.get_secret_value())
        except ValueError:
            raise ValueError("must be a valid http:// or https:// URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("stream", "confirm", mode="before")
    @classmethod
    def _stream(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("heartbeat_interval", "stream_idle")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @property
    def provider_names(self) -> list[str]:
        return [p.strip().lower() for p in self.providers.split(",") if p.strip()]

    @property
    def confirm_wait_if_on(self) -> timedelta | None:
        """EARNWATCH_CONFIRM_WAIT when EARNWATCH_CONFIRM=2, else None (confirmation off)."""
        return self.confirm_wait if self.confirm == "2" else None

    @property
    def stream_provider(self) -> str | None:
        """The provider whose trade stream runs (None: no stream). EARNWATCH_STREAM unset
        means finnhub when EARNWATCH_PROVIDERS lists it and FINNHUB_API_KEY is set."""
        if self.stream == "off" or self.stream_symbols == 0:
            return None
        if self.stream == "finnhub":
            return "finnhub"
        key = self.finnhub_api_key
        has_key = key is not None and bool(key.get_secret_value().strip())
        return "finnhub" if "finnhub" in self.provider_names and has_key else None

    @property
    def allowed_host_names(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())

    @property
    def smtp_effective_port(self) -> int:
        if self.smtp_port is not None:
            return self.smtp_port
        return {"tls": 465, "starttls": 587, "none": 25}[self.smtp_security]

    @property
    def http_host_port(self) -> tuple[str, int]:
        return parse_host_port(self.http)

    def secrets(self) -> list[str]:
        """Every secret value set, for the log filter that masks them: each `SecretStr`
        setting (keys, passwords, the heartbeat URL, which is enough to fake a ping) and
        the database URL's password. Derived from the fields, so a new key is never
        forgotten here."""
        values: list[str] = []
        for name in SECRET_FIELDS:
            secret = getattr(self, name)
            if isinstance(secret, SecretStr) and secret.get_secret_value():
                values.append(secret.get_secret_value())
        password = urlsplit(self.database_url).password
        if password:
            values.append(password)
        return values


def parse_host_port(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (127.0.0.1); raises ValueError naming no value."""
    match = _HOST_PORT.match(value.strip())
    if match is None:
        raise ValueError(HTTP_HINT)
    port = int(match["port"])
    if port > 65535:
        raise ValueError("port out of range: use 0 to 65535 (0 picks a free port)")
    return (match["v6"] or match["host"] or "127.0.0.1"), port


def _secret_fields() -> tuple[str, ...]:
    """The Settings fields that hold a `SecretStr` (alone or optional)."""
    return tuple(
        name
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
    )


#: The names of the Settings fields whose values are secrets (see `Settings.secrets()`).
SECRET_FIELDS: Final = _secret_fields()


def env_name(field: str) -> str:
    """The variable a Settings field is read from: its vendor name, else EARNWATCH_<FIELD>."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field}".upper()


def _secret_env_names() -> frozenset[str]:
    """The environment names of every secret setting, and of the database URL (which may
    hold a password): a rule file's `${VAR}` may not name them."""
    return frozenset({env_name("database_url"), *(env_name(name) for name in SECRET_FIELDS)})


SECRET_ENV_NAMES: Final = _secret_env_names()

#: Per field: the key pydantic validates it under (its alias, else its name), the variable
#: it is read from and the keyword names it is given by (the vendor name first), all
#: lower-cased: names match in any case, as pydantic-settings' `case_sensitive=False` did.
_SOURCES: Final = tuple(
    (
        field.validation_alias if isinstance(field.validation_alias, str) else name,
        env_name(name).lower(),
        tuple(dict.fromkeys((env_name(name).lower(), name) if field.validation_alias else (name,))),
    )
    for name, field in Settings.model_fields.items()
)


def _sourced(env_file: str | Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Each setting's value from the first source that has it: `overrides` (by field name
    or vendor name), the process environment, then `env_file` (a bare `KEY` there is unset;
    an empty value is a value). Settings no source has are left out: their default."""
    given: dict[str, Any] = {}
    for key, value in overrides.items():
        given.setdefault(key.lower(), value)  # of two spellings of one name, the first
    environ = {key.lower(): value for key, value in os.environ.items()}
    dotenv = _env_file_values(env_file)
    values: dict[str, Any] = {}
    for key, variable, keywords in _SOURCES:
        for keyword in keywords:
            if keyword in given:
                values[key] = given[keyword]
                break
        else:
            if variable in environ:
                values[key] = environ[variable]
            elif dotenv.get(variable) is not None:
                values[key] = dotenv[variable]
    return values


def _env_file_values(env_file: str | Path | None) -> dict[str, str | None]:
    """The variables of the `.env` file by lower-cased name (of two spellings, the last);
    none when there is no such file."""
    if env_file is None:
        return {}
    path = Path(env_file).expanduser()
    if not (path.is_file() or path.is_fifo()):
        return {}
    from dotenv import dotenv_values  # only when there is a file to read

    return {key.lower(): value for key, value in dotenv_values(path).items()}


def env_file_warning(env_file: str | Path | None) -> str | None:
    """A warning when `.env` (which holds keys and passwords) is readable by group or
    others, as `chmod 600` would prevent; None when it is private or absent."""
    if env_file is None:
        return None
    try:
        mode = os.stat(env_file).st_mode
    except OSError:
        return None
    if not stat.S_ISREG(mode) or not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    return f"{env_file} is readable by others (mode {stat.S_IMODE(mode):04o}): chmod 600 {env_file}"


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read and validate the settings once. Raises ConfigError naming each bad variable."""
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            loc = ".".join(str(part) for part in error["loc"])
            name = loc if loc.isupper() else f"EARNWATCH_{loc.upper()}"
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{name}: {message}")
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None


def load_env(env_file: str | Path | None = ".env") -> dict[str, str]:
    """The variables a rule file may substitute: `.env` first, the environment over it."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values  # only when there is a file to read

        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return values
