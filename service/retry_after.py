"""Retry-After (RFC 9110 §10.2.3), read one way for providers and notifiers alike, and
the one cap on how long any server may make us wait.

`retry_after(headers, now=...)` is the wait a response asks for, in seconds, or None when
it asks for none we can read (no header, garbage, a negative number):

- delta-seconds: a non-negative decimal number (`120`, `1.5`);
- an HTTP-date (`Wed, 04 Feb 2026 15:00:45 GMT`), measured against the response's own
  `Date` header when it has a readable one, so a skew between our clock and the server's
  does not change the wait; otherwise against `now` (default: the current UTC time).
  A date already past is 0.

Every wait is capped at RETRY_AFTER_CAP: a server cannot park a provider or a channel
for a day. Pure standard library; `headers` is any str mapping (httpx.Headers or a dict),
looked up without regard to case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

#: The longest wait a Retry-After may impose, in seconds, whatever the server says.
RETRY_AFTER_CAP: Final = 300.0

_DELTA_SECONDS: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait before asking again (at most RETRY_AFTER_CAP), or None."""
    value = _header(headers, "retry-after")
    if value is None:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        return min(float(value), RETRY_AFTER_CAP)  # a 400-digit number is inf: capped too
    when = _http_date(value)
    if when is None:
        return None
    base = _http_date(_header(headers, "date") or "") or _utc(now or datetime.now(UTC))
    return min(max(0.0, (when - base).total_seconds()), RETRY_AFTER_CAP)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value.strip() or None
    return None


def _http_date(value: str) -> datetime | None:
    from email.utils import parsedate_to_datetime  # with the first date read, not by `check`

    try:
        return _utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _utc(when: datetime) -> datetime:
    """`when` as an aware datetime; a naive one (`-0000` in a header) is UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
