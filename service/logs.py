"""Logging for the daemon: text or JSON lines on stderr, with every known secret masked.

`setup_logging()` configures the root logger once (a second call replaces our handler, so
tests and reloads may call it again) and returns the `SecretMask` it installed. The mask
replaces each registered secret, its URL-encoded, JSON-escaped and base64 forms (at any
alignment inside a longer base64 string, as in SMTP `AUTH PLAIN`) with `***`: in the
message after `%`-formatting, in exception and stack text, in `extra` fields, and once more
in the final line. Register secrets that appear at run time (webhook URLs from a reloaded
rule file) with `SecretMask.add()`.

The `httpx` and `httpcore` loggers are raised to WARNING: httpx logs every request URL at
INFO, and URLs hold secrets (Slack webhook paths, `?token=` keys).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO
from urllib.parse import quote, quote_plus

MASK: Final = "***"
MIN_SECRET_LENGTH: Final = 4
"""Shorter values are not masked: masking every `abc` would garble the logs and hide little."""
QUIET_LOGGERS: Final = ("httpx", "httpcore")

_RECORD_FIELDS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _base64_forms(raw: bytes) -> set[str]:
    """Substrings that appear in any base64 text encoding `raw`, whatever precedes it."""
    forms: set[str] = set()
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw).decode("ascii")
            start = -(-8 * pad // 6)  # first character free of the padding bytes
            end = 8 * (pad + len(raw)) // 6  # last character made of `raw` bits only
            if end - start >= MIN_SECRET_LENGTH:
                forms.add(text[start:end])
    return forms


def _variants(secret: str) -> set[str]:
    """The forms in which a secret may reach a log line."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    forms.add(json.dumps(secret)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    forms |= _base64_forms(secret.encode("utf-8"))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class SecretMask(logging.Filter):
    """A logging filter that replaces registered secrets with `***`; also usable alone
    through `mask(text)`. Safe to `add()` from any thread while logging goes on."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Register one more secret (empty and very short values are ignored)."""
        if len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            new = _variants(secret) - self._forms
            if not new:
                return
            self._forms |= new
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._forms, key=lambda f: (-len(f), f))
            self._pattern = re.compile("|".join(re.escape(f) for f in ordered))

    def mask(self, text: str) -> str:
        """`text` with every registered secret replaced by `***`."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place, so every handler after ours sees it masked."""
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not raise into the caller of log.info()
            message = f"{record.msg!s} (unformattable log arguments: {record.args!r})"
        record.msg = self.mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for key, value in extra_fields(record).items():
            setattr(record, key, self._mask_value(value))
        return True

    def _mask_value(self, value: object) -> object:
        """A masked copy of an `extra` value: JSON-like data keeps its shape, anything
        else becomes its masked `str()`."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {self.mask(str(k)): self._mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._mask_value(v) for v in value]
        return self.mask(str(value))


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The attributes given through `extra=`, in the order they were set."""
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}


def _timestamp(record: logging.LogRecord, *, millis: bool) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds" if millis else "seconds").replace("+00:00", "Z")


def _exception_text(record: logging.LogRecord, formatter: logging.Formatter) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    parts = [p for p in (record.exc_text, record.stack_info) if p]
    return "\n".join(parts) if parts else None


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n") if "\n" in text or "\r" in text else text


class TextFormatter(logging.Formatter):
    """`2026-02-03T21:05:00Z INFO service.pipeline: message key=value ...`, then any
    traceback on the following lines."""

    def __init__(self, mask: SecretMask) -> None:
        super().__init__()
        self._mask = mask

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record, millis=False)} {record.levelname} {record.name}: "
        # One record, one line: a line break inside a message (a name from the rule file,
        # a provider's error text) could otherwise forge a log line of its own.
        line += _one_line(record.getMessage())
        for key, value in extra_fields(record).items():
            text = str(value)
            if not text or any(c.isspace() or c in "=\"'" for c in text):
                text = json.dumps(text, ensure_ascii=False)
            line += f" {key}={text}"
        exc = _exception_text(record, self)
        if exc:
            line += "\n" + exc
        return self._mask.mask(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts`, `level`, `logger`, `msg`, the `extra` fields, and
    `exc` when there is an exception or stack."""

    def __init__(self, mask: SecretMask) -> None:
        super().__init__()
        self._mask = mask

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record, millis=True),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            data.setdefault(key, value)
        exc = _exception_text(record, self)
        if exc:
            data["exc"] = exc
        return self._mask.mask(json.dumps(data, ensure_ascii=False, default=str))


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time of each record (pytest swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(
    *, fmt: Literal["text", "json"], level: str, secrets: Iterable[str]
) -> SecretMask:
    """Configure the root logger: our one stderr handler in `fmt`, at `level` (a name such
    as "INFO"), masking `secrets`. Returns the mask, to register more secrets later.
    Raises ValueError for an unknown format or level."""
    numeric = logging.getLevelNamesMapping().get(level.strip().upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    mask = SecretMask(secrets)
    if fmt == "text":
        formatter: logging.Formatter = TextFormatter(mask)
    elif fmt == "json":
        formatter = JsonFormatter(mask)
    else:
        raise ValueError(f"unknown log format {fmt!r}: expected text or json")
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.addFilter(mask)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
        old.close()
    # First in line: the mask rewrites each record before any other handler formats it.
    root.handlers.insert(0, handler)
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
    return mask
