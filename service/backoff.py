"""The retry policy of deliveries, pure, so it is tested on its own: what a finished
attempt does to its delivery (`RetryPolicy.decide`) and the delay before the next one
(`compute_backoff`: exponential from `base` by `factor`, ±50 % jitter, capped; never
sooner than the receiver's Retry-After, itself capped at `RETRY_AFTER_CAP`). By default
the backoff's own cap is RETRY_AFTER_CAP too: no wait between two attempts is longer than
the longest a receiver may ask for.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from service.retry_after import RETRY_AFTER_CAP

if TYPE_CHECKING:  # a type only: importing the store would load SQLAlchemy (~250 ms)
    from service.store import Outcome

logger = logging.getLogger("service.delivery")


def compute_backoff(
    attempts: int,
    *,
    retry_after: float | None,
    rng: random.Random,
    base: float = 1.0,
    factor: float = 2.0,
    cap: float = RETRY_AFTER_CAP,
) -> float:
    """Seconds to wait after failed attempt number `attempts` (1 for the first).

    `base * factor**(attempts - 1)`, capped at `cap`, times a jitter drawn uniformly from
    [0.5, 1.5), capped at `cap` again; then at least `retry_after` (clamped to
    RETRY_AFTER_CAP) when the receiver asked for it. Negative or non-finite `retry_after`
    values are ignored.
    """
    exponent = max(1, attempts) - 1
    try:
        raw = base * factor**exponent
    except OverflowError:
        raw = cap
    delay = min(cap, min(cap, raw) * rng.uniform(0.5, 1.5))
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


#: Where a finished attempt leaves its delivery.
Settled = Literal["pending", "delivered", "dead"]


@dataclass(frozen=True)
class RetryPolicy:
    """When a delivery is given up, and how long to wait before trying it again."""

    max_attempts: int = 12
    max_age: timedelta = timedelta(hours=24)
    base: float = 1.0
    factor: float = 2.0
    cap: float = RETRY_AFTER_CAP
    rng: random.Random = field(default_factory=random.Random)

    def decide(
        self,
        outcome: Outcome,
        attempts: int,
        age: timedelta,
        error: str | None,
        retry_after: float | None,
    ) -> tuple[Settled, float | None, str | None]:
        """(new status, seconds until the next attempt or None, the error to record)."""
        if outcome == "ok":
            return "delivered", None, error
        if outcome == "permanent":
            return "dead", None, error
        if attempts >= self.max_attempts:
            return "dead", None, f"{error} (gave up after {attempts} attempts)"
        if age > self.max_age:
            return "dead", None, f"{error} (gave up: older than {self.max_age})"
        if retry_after is not None and retry_after > RETRY_AFTER_CAP:
            logger.warning(
                "delivery: Retry-After %.0f s clamped to %.0f s", retry_after, RETRY_AFTER_CAP
            )
        delay = compute_backoff(
            attempts,
            retry_after=retry_after,
            rng=self.rng,
            base=self.base,
            factor=self.factor,
            cap=self.cap,
        )
        return "pending", delay, error
