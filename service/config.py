"""Settings from the environment and `.env`, read once, validated once, passed down.

This is the only module that reads the environment. Vendor keys keep their usual names
(`FINNHUB_API_KEY`); our own settings use the `EARNWATCH_` prefix. A bad setting is a
`ConfigError` with one line per variable and never the value (it may be a secret).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.durations import parse_duration
from service.errors import ConfigError


class Settings(BaseSettings):
    """Every setting, with its default. `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="EARNWATCH_", env_file=".env", extra="ignore", frozen=True
    )

    # --- rule file, storage, process -------------------------------------------------
    rules: Path = Path("rules.yaml")
    database_url: str = "sqlite:///earnwatch.db"
    http: str = "127.0.0.1:8787"
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

    # --- schedule --------------------------------------------------------------------
    calendar_refresh: timedelta = timedelta(hours=6)
    price_poll: timedelta = timedelta(seconds=60)
    off_hours_poll: timedelta = timedelta(minutes=15)
    earnings_poll: timedelta = timedelta(seconds=30)
    rules_watch: timedelta = timedelta(seconds=1)

    # --- delivery --------------------------------------------------------------------
    delivery_concurrency: int = Field(8, ge=1)
    delivery_max_attempts: int = Field(12, ge=1)
    delivery_max_age: timedelta = timedelta(hours=24)
    delivery_lease: timedelta = timedelta(minutes=2)
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
        "slack_interval",
        "smtp_timeout",
        "heartbeat_interval",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration(value, bare_seconds=True)
        return value

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

    @field_validator("heartbeat_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @property
    def provider_names(self) -> list[str]:
        return [p.strip().lower() for p in self.providers.split(",") if p.strip()]

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
        host, _, port = self.http.rpartition(":")
        return (host or "127.0.0.1"), int(port)

    def secrets(self) -> list[str]:
        """Every secret value set, for the log filter that masks them."""
        found = [self.finnhub_api_key, self.fmp_api_key, self.smtp_password]
        found.append(self.heartbeat_url)  # a ping URL is enough to fake the heartbeat
        values = [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]
        password = urlsplit(self.database_url).password
        if password:
            values.append(password)
        return values


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read and validate the settings once. Raises ConfigError naming each bad variable."""
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            loc = ".".join(str(part) for part in error["loc"])
            name = loc if loc.isupper() else f"EARNWATCH_{loc.upper()}"
            lines.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None


def load_env(env_file: str | Path | None = ".env") -> dict[str, str]:
    """The variables a rule file may substitute: `.env` first, the environment over it."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return values
