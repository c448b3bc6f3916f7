"""Log lines in both formats, and no registered secret in any of them (RELIABILITY X5)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from service.logs import SecretMask, setup_logging

SLACK = "https://hooks.slack.com/services/T0/B0/SENTINELslack123"
FINNHUB = "SENTINELfinnhub456"
SMTP = "SENTINELsmtp789"
SENTINELS = ("SENTINELslack123", FINNHUB, SMTP)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)


def assert_no_sentinel(text: str) -> None:
    for sentinel in SENTINELS:
        for form in (sentinel, quote(sentinel), base64.b64encode(sentinel.encode()).decode()):
            assert form not in text


def log_everything(log: logging.Logger) -> None:
    log.info("posting to %s", SLACK)
    log.warning(f"key %s in the message itself: {FINNHUB}", "arg")  # noqa: G004
    log.info("extra field", extra={"url": SLACK, "attempt": 2})
    log.info("url-encoded %s", quote(SLACK, safe=""))
    log.info("auth plain %s", base64.b64encode(f"\0user\0{SMTP}".encode()).decode())
    try:
        raise RuntimeError(f"smtp login failed for password {SMTP}")
    except RuntimeError:
        log.exception("delivery failed")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_in_message_args_extra_and_exception_are_masked(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(fmt=fmt, level="DEBUG", secrets=[SLACK, FINNHUB, SMTP])  # type: ignore[arg-type]
    log_everything(logging.getLogger("service.delivery"))
    err = capsys.readouterr().err
    assert_no_sentinel(err)
    assert "***" in err
    assert "delivery failed" in err
    assert "RuntimeError" in err


def test_text_lines_read_time_level_logger_message_and_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(fmt="text", level="INFO", secrets=[])
    logging.getLogger("service.pipeline").info(
        "cycle done in %d ms", 12, extra={"symbols": 3, "note": "two words"}
    )
    line = capsys.readouterr().err.strip()
    stamp, level, rest = line.split(" ", 2)
    assert stamp.endswith("Z") and stamp[10] == "T" and len(stamp) == 20
    assert level == "INFO"
    assert rest == 'service.pipeline: cycle done in 12 ms symbols=3 note="two words"'


def test_json_lines_parse_and_carry_extra_fields_and_the_exception(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(fmt="json", level="INFO", secrets=[FINNHUB])
    log = logging.getLogger("service.providers.finnhub")
    log.info("quote %s", "LUMN", extra={"symbol": "LUMN", "price": 1.5, "token": FINNHUB})
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("boom")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["level"] == "INFO"
    assert first["logger"] == "service.providers.finnhub"
    assert first["msg"] == "quote LUMN"
    assert first["symbol"] == "LUMN" and first["price"] == 1.5
    assert first["token"] == "***"
    assert first["ts"].endswith("Z")
    assert "exc" not in first
    assert "ZeroDivisionError" in second["exc"]


def test_records_reaching_other_handlers_are_masked_too(caplog: pytest.LogCaptureFixture) -> None:
    setup_logging(fmt="text", level="INFO", secrets=[FINNHUB])
    with caplog.at_level(logging.INFO):
        logging.getLogger("service.x").info("token=%s", FINNHUB)
    assert [r.getMessage() for r in caplog.records] == ["token=***"]
    assert FINNHUB not in caplog.text


def test_secrets_added_at_runtime_are_masked_from_then_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mask = setup_logging(fmt="text", level="INFO", secrets=[])
    log = logging.getLogger("service.rules")
    mask.add(SLACK)
    log.info("reloaded, channel %s", SLACK)
    assert_no_sentinel(capsys.readouterr().err)


def test_httpx_info_records_are_not_emitted(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(fmt="text", level="DEBUG", secrets=[])
    logging.getLogger("httpx").info('HTTP Request: GET %s "HTTP/1.1 200 OK"', "https://x/?t=1")
    logging.getLogger("httpcore.connection").debug("connect_tcp.started")
    logging.getLogger("httpx").warning("still shown")
    err = capsys.readouterr().err
    assert "HTTP Request" not in err
    assert "connect_tcp" not in err
    assert "still shown" in err


def test_a_second_setup_replaces_the_handler_instead_of_adding_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(fmt="text", level="INFO", secrets=[])
    setup_logging(fmt="json", level="INFO", secrets=[])
    logging.getLogger("service.x").info("once")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["msg"] == "once"


def test_level_filters_records_below_it(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(fmt="text", level="warning", secrets=[])
    logging.getLogger("service.x").info("hidden")
    logging.getLogger("service.x").warning("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err and "shown" in err


def test_unknown_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        setup_logging(fmt="text", level="LOUD", secrets=[])
    with pytest.raises(ValueError, match="log format"):
        setup_logging(fmt="xml", level="INFO", secrets=[])  # type: ignore[arg-type]


def test_bad_format_arguments_do_not_raise_and_stay_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(fmt="text", level="INFO", secrets=[FINNHUB])
    logging.getLogger("service.x").info("two %s %s", FINNHUB)
    err = capsys.readouterr().err
    assert "unformattable" in err
    assert FINNHUB not in err


def test_mask_covers_url_encoded_json_escaped_and_base64_forms() -> None:
    secret = 'p@ss w/"quote"'
    mask = SecretMask([secret])
    assert mask.mask(f"a {secret} b") == "a *** b"
    assert mask.mask(quote(secret, safe="")) == "***"
    assert mask.mask(json.dumps({"k": secret})) == '{"k": "***"}'
    for prefix in (b"", b"x", b"xy", b"\0user\0"):
        encoded = base64.b64encode(prefix + secret.encode()).decode()
        assert "***" in mask.mask(encoded)
        assert encoded not in mask.mask(encoded)


def test_mask_ignores_empty_and_very_short_values() -> None:
    mask = SecretMask(["", "ab"])
    assert mask.mask("abc ab") == "abc ab"


def test_a_secret_containing_another_is_masked_whole() -> None:
    mask = SecretMask(["SENTINEL", "SENTINELlonger"])
    assert mask.mask("x SENTINELlonger y") == "x *** y"


def test_structured_extra_fields_keep_their_shape_in_json_and_are_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(fmt="json", level="INFO", secrets=[FINNHUB])
    logging.getLogger("service.x").info(
        "request", extra={"params": {"symbol": "LUMN", "token": FINNHUB}, "tries": [1, 2]}
    )
    line = json.loads(capsys.readouterr().err)
    assert line["params"] == {"symbol": "LUMN", "token": "***"}
    assert line["tries"] == [1, 2]
