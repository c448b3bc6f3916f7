"""Settings: defaults, durations, errors that name the variable and never the value."""

from datetime import timedelta

import pytest
from pydantic import SecretStr

from service.config import SECRET_FIELDS, Settings, load_settings
from service.errors import ConfigError


def test_defaults_and_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARNWATCH_PRICE_POLL", "1s")
    monkeypatch.setenv("EARNWATCH_OFF_HOURS_POLL", "90")
    settings = load_settings(env_file=None)
    assert settings.price_poll == timedelta(seconds=1)
    assert settings.off_hours_poll == timedelta(seconds=90)
    assert settings.calendar_refresh == timedelta(hours=6)
    assert settings.provider_names == ["finnhub"]
    assert settings.http_host_port == ("127.0.0.1", 8787)


def test_a_bad_setting_names_the_variable_and_not_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EARNWATCH_DELIVERY_CONCURRENCY", "0")
    monkeypatch.setenv("SMTP_SECURITY", "sometimes-hunter2")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    text = str(info.value)
    assert "EARNWATCH_DELIVERY_CONCURRENCY" in text and "SMTP_SECURITY" in text
    assert "hunter2" not in text


def test_secrets_include_keys_and_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINNHUB_API_KEY", "fh-secret")
    monkeypatch.setenv("EARNWATCH_DATABASE_URL", "postgresql+psycopg://u:pg-secret@db/earnwatch")
    assert sorted(load_settings(env_file=None).secrets()) == ["fh-secret", "pg-secret"]


def test_dotenv_is_read_and_the_environment_wins(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("EARNWATCH_PROVIDERS=fmp,nasdaq\nEARNWATCH_PRICE_POLL=5m\n")
    monkeypatch.setenv("EARNWATCH_PRICE_POLL", "30s")
    settings = load_settings(env_file=env)
    assert settings.provider_names == ["fmp", "nasdaq"]
    assert settings.price_poll == timedelta(seconds=30)


def test_secrets_hold_every_secret_field_without_a_hand_list() -> None:
    assert {"finnhub_api_key", "fmp_api_key", "smtp_password", "heartbeat_url"} <= set(
        SECRET_FIELDS
    )
    values = {name: SecretStr(f"secret-of-{name}") for name in SECRET_FIELDS}
    settings = Settings.model_construct(**values)  # type: ignore[arg-type]
    assert sorted(settings.secrets()) == sorted(f"secret-of-{name}" for name in SECRET_FIELDS)


def test_the_stream_is_finnhub_by_default_with_a_key_and_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("EARNWATCH_STREAM", "EARNWATCH_PROVIDERS", "FINNHUB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings(None).stream_provider is None  # no key
    assert load_settings(None, finnhub_api_key="k").stream_provider == "finnhub"
    assert load_settings(None, finnhub_api_key="k", providers="fmp").stream_provider is None
    assert load_settings(None, finnhub_api_key="k", stream="OFF").stream_provider is None
    assert load_settings(None, finnhub_api_key="k", stream_symbols=0).stream_provider is None
    settings = load_settings(None, finnhub_api_key="k")
    assert settings.finnhub_stream_url == "wss://ws.finnhub.io"
    assert (settings.stream_symbols, settings.stream_idle.total_seconds()) == (50, 60)
    with pytest.raises(ConfigError, match="EARNWATCH_STREAM_IDLE"):
        load_settings(None, stream_idle="0s")
