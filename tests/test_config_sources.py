"""Where a setting's value comes from: keyword overrides over the process environment over
the `.env` file over the default; names matched case-insensitively; a bare `KEY` in `.env`
is unset, an empty value is a value. Written against pydantic-settings' behaviour, which
`service/config.py` keeps without it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from service.config import SECRET_ENV_NAMES, Settings, load_settings
from service.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith(("EARNWATCH_", "FINNHUB_", "FMP_", "NASDAQ_", "SMTP_")):
            monkeypatch.delenv(name)


def dotenv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text)
    return path


# --- empty values ------------------------------------------------------------------------


def test_an_empty_smtp_port_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PORT", "")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert str(info.value) == (
        "invalid settings: SMTP_PORT: Input should be a valid integer, "
        "unable to parse string as an integer"
    )


def test_earnwatch_smtp_port_is_not_a_name_so_even_empty_it_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EARNWATCH_SMTP_PORT", "")
    assert load_settings(env_file=None).smtp_port is None
    settings = load_settings(env_file=dotenv(tmp_path, "EARNWATCH_SMTP_PORT=\n"))
    assert settings.smtp_port is None
    assert settings.smtp_effective_port == 587


def test_an_empty_http_token_is_no_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EARNWATCH_HTTP_TOKEN", "")
    assert load_settings(env_file=None).http_token is None
    monkeypatch.delenv("EARNWATCH_HTTP_TOKEN")
    assert load_settings(env_file=dotenv(tmp_path, "EARNWATCH_HTTP_TOKEN=\n")).http_token is None


def test_other_empty_values_are_values_not_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARNWATCH_PROVIDERS", "")
    monkeypatch.setenv("SMTP_HOST", "")
    monkeypatch.setenv("EARNWATCH_HTTP", "")
    settings = load_settings(env_file=None)
    assert (settings.providers, settings.smtp_host, settings.http) == ("", "", "")
    monkeypatch.setenv("EARNWATCH_PRICE_POLL", "")
    with pytest.raises(ConfigError, match=r"^invalid settings: EARNWATCH_PRICE_POLL: not a dur"):
        load_settings(env_file=None)


def test_an_empty_value_in_the_file_is_a_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^invalid settings: SMTP_PORT: Input should be"):
        load_settings(env_file=dotenv(tmp_path, "SMTP_PORT=\n"))


# --- a bare KEY in .env ------------------------------------------------------------------


def test_a_bare_key_in_the_file_is_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = dotenv(tmp_path, "SMTP_PORT\nEARNWATCH_HTTP\nSMTP_HOST\nEARNWATCH_LOG_LEVEL\n")
    settings = load_settings(env_file=path)
    assert (settings.smtp_port, settings.http, settings.smtp_host) == (None, "127.0.0.1:8787", None)
    assert settings.log_level == "INFO"
    monkeypatch.setenv("SMTP_HOST", "mail.example.com")
    assert load_settings(env_file=path).smtp_host == "mail.example.com"


# --- precedence --------------------------------------------------------------------------


def test_keywords_over_the_environment_over_the_file_over_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = dotenv(
        tmp_path,
        "EARNWATCH_LOG_LEVEL=debug\nEARNWATCH_PRICE_POLL=5m\nEARNWATCH_PROVIDERS=fmp\n"
        "SMTP_HOST=file.example.com\n",
    )
    monkeypatch.setenv("EARNWATCH_LOG_LEVEL", "error")
    monkeypatch.setenv("EARNWATCH_PRICE_POLL", "30s")
    settings = load_settings(env_file=path, log_level="warning")
    assert settings.log_level == "WARNING"  # keyword
    assert settings.price_poll == timedelta(seconds=30)  # environment
    assert settings.providers == "fmp"  # file
    assert settings.smtp_host == "file.example.com"
    assert settings.off_hours_poll == timedelta(minutes=15)  # default


def test_an_empty_environment_value_still_wins_over_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMTP_PORT", "")
    with pytest.raises(ConfigError, match="SMTP_PORT"):
        load_settings(env_file=dotenv(tmp_path, "SMTP_PORT=25\n"))


def test_no_file_and_an_absent_file_read_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    dotenv(tmp_path, "EARNWATCH_LOG_LEVEL=debug\n")
    assert load_settings(env_file=None).log_level == "INFO"
    assert load_settings(env_file=tmp_path / "absent").log_level == "INFO"
    assert load_settings(env_file=tmp_path).log_level == "INFO"  # a folder is no file
    assert load_settings().log_level == "DEBUG"  # ./.env by default
    assert Settings().log_level == "DEBUG"


def test_the_file_is_read_as_python_dotenv_reads_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FROM_ENV", "nasdaq")
    path = dotenv(
        tmp_path,
        "# a comment\n"
        'export EARNWATCH_PROVIDERS="fmp, ${FROM_ENV}"\n'
        "OTHER=x\nEARNWATCH_ALLOWED_HOSTS=${OTHER}.example.com\n"
        "EARNWATCH_ALLOW_PRIVATE_TARGETS=yes\n"
        "EARNWATCH_STREAM_SYMBOLS=1\nearnwatch_stream_symbols=2\n",
    )
    settings = load_settings(env_file=path)
    assert settings.provider_names == ["fmp", "nasdaq"]
    assert settings.allowed_host_names == {"x.example.com"}
    assert settings.allow_private_targets is True
    assert settings.stream_symbols == 2  # the last of two spellings


def test_settings_built_directly_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINNHUB_API_KEY", "fh-key")
    monkeypatch.setenv("EARNWATCH_PROVIDERS", "fmp")
    settings = Settings(_env_file=None, providers="nasdaq")
    assert settings.finnhub_api_key == SecretStr("fh-key")
    assert settings.providers == "nasdaq"


# --- names -------------------------------------------------------------------------------


def test_names_are_matched_whatever_their_case(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("earnwatch_log_level", "debug")
    monkeypatch.setenv("Smtp_Host", "mail.example.com")
    path = dotenv(tmp_path, "smtp_port=26\nEarnWatch_Providers=fmp\n")
    settings = load_settings(env_file=path)
    assert (settings.log_level, settings.smtp_host) == ("DEBUG", "mail.example.com")
    assert (settings.smtp_port, settings.providers) == (26, "fmp")


def test_keywords_take_the_field_name_or_the_vendor_name_in_any_case() -> None:
    settings = load_settings(
        None, finnhub_api_key="k1", FMP_API_KEY="k2", smtp_port="26", LOG_LEVEL="debug"
    )
    assert settings.finnhub_api_key == SecretStr("k1")
    assert settings.fmp_api_key == SecretStr("k2")
    assert (settings.smtp_port, settings.log_level) == (26, "DEBUG")
    assert load_settings(None, smtp_host="a", SMTP_HOST="b").smtp_host == "a"  # the first
    assert load_settings(None, SMTP_HOST="b", smtp_host="a").smtp_host == "b"


def test_names_that_are_not_settings_are_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EARNWATCH_SMTP_HOST", "x")  # the vendor name is SMTP_HOST
    monkeypatch.setenv("EARNWATCH_FINNHUB_API_KEY", "x")
    monkeypatch.setenv("EARNWATCH_NOT_A_SETTING", "x")
    path = dotenv(tmp_path, "RULES=x.yaml\nLOG_LEVEL=debug\nHTTP=off\nEARNWATCH_NOPE=1\n")
    settings = load_settings(env_file=path, EARNWATCH_PROVIDERS="fmp", nope=1)
    assert (settings.smtp_host, settings.finnhub_api_key) == (None, None)
    assert (settings.rules, settings.log_level, settings.http) == (
        Path("rules.yaml"),
        "INFO",
        "127.0.0.1:8787",
    )
    assert settings.providers == "finnhub"


def test_a_keyword_none_is_none_where_allowed_and_an_error_elsewhere() -> None:
    assert load_settings(None, smtp_port=None).smtp_port is None
    with pytest.raises(ConfigError) as info:
        load_settings(None, log_level=None, http=None)
    assert str(info.value) == (
        "invalid settings: EARNWATCH_HTTP: Input should be a valid string; "
        "EARNWATCH_LOG_LEVEL: Input should be a valid string"
    )


def test_every_bad_setting_is_named_in_field_order_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = {
        "EARNWATCH_LOG_LEVEL": "loud-hunter2",
        "SMTP_SECURITY": "sometimes-hunter2",
        "EARNWATCH_HTTP_TOKEN": "a hunter2",
        "SMTP_TIMEOUT": "zz-hunter2",
        "SMTP_PORT": "x-hunter2",
        "EARNWATCH_ALLOW_PRIVATE_TARGETS": "maybe-hunter2",
        "EARNWATCH_LOG_FORMAT": "xml-hunter2",
    }
    for name, value in bad.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert str(info.value) == (
        "invalid settings: EARNWATCH_HTTP_TOKEN: must be printable, without spaces (it is sent "
        "in a header); EARNWATCH_LOG_FORMAT: Input should be 'text' or 'json'; "
        "EARNWATCH_LOG_LEVEL: unknown log level: use DEBUG, INFO, WARNING, ERROR or CRITICAL; "
        "EARNWATCH_ALLOW_PRIVATE_TARGETS: Input should be a valid boolean, unable to interpret "
        "input; SMTP_PORT: Input should be a valid integer, unable to parse string as an "
        "integer; SMTP_SECURITY: Input should be 'starttls', 'tls' or 'none'; SMTP_TIMEOUT: not "
        "a duration: write it like 30s, 10m, 4h or 2d (at most 365d)"
    )


def test_values_of_every_type_are_read_from_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARNWATCH_RULES", "a/b.yaml")
    monkeypatch.setenv("EARNWATCH_DELIVERY_CONCURRENCY", "3")
    monkeypatch.setenv("EARNWATCH_ALLOW_PRIVATE_TARGETS", "1")
    monkeypatch.setenv("EARNWATCH_PROVIDERS", '["a"]')  # text, not JSON
    monkeypatch.setenv("EARNWATCH_EARNINGS_POLL", "5")
    monkeypatch.setenv("EARNWATCH_CONFIRM", " 2 ")
    settings = load_settings(env_file=None)
    assert settings.rules == Path("a/b.yaml")
    assert settings.delivery_concurrency == 3
    assert settings.allow_private_targets is True
    assert settings.providers == '["a"]'
    assert settings.earnings_poll == timedelta(seconds=5)
    assert settings.confirm == "2"


def test_the_secret_names_are_the_names_read() -> None:
    assert {
        "FINNHUB_API_KEY",
        "FMP_API_KEY",
        "SMTP_PASSWORD",
        "EARNWATCH_HTTP_TOKEN",
        "EARNWATCH_HEARTBEAT_URL",
        "EARNWATCH_DATABASE_URL",
    } == SECRET_ENV_NAMES
