"""`assert_no_secret_leaks`: the one check every notifier passes (Alertmanager's
AssertNotifyLeaksNoSecret): no secret, in plain, URL-encoded or base64 form, in an
error's text or traceback, or in a log record."""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Iterable
from urllib.parse import quote


def forms(secret: str) -> set[str]:
    """The shapes a leaked secret takes: itself, URL-encoded, base64 (AUTH PLAIN)."""
    return {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}


def assert_no_secret_leaks(
    secrets: Iterable[str],
    *,
    error: BaseException | None = None,
    records: Iterable[logging.LogRecord] = (),
) -> None:
    texts = []
    if error is not None:
        texts.append(str(error))
        texts.append("".join(traceback.format_exception(error)))
    for record in records:
        texts.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            texts.append("".join(traceback.format_exception(record.exc_info[1])))
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        for form in forms(secret):
            for text in texts:
                assert form not in text, f"secret leaked: {text!r}"
