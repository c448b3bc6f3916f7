"""Every duration of the leader election, derived from EARNWATCH_FAILOVER (F).

Pure arithmetic, kept apart from the election itself so the reasoning is in one place:
renew every step, fence at F/2, let keepalives give a silent peer up at about 0.6 F, and
terminate a holder idle that long, so a standby leads within F and two never do at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class LeaderTimings:
    """Every duration of the election, derived from `failover` (see the module docstring).
    Seconds unless the name says otherwise; libpq and the server take whole seconds."""

    failover: float
    step_interval: float  # how often the daemon should call step(): min(1 s, F/10)
    fence_after: float  # F/2: no successful renewal started for this long -> not leading
    stale_after: float  # 0.6 F: a standby terminates a holder idle on the server this long
    op_timeout: float  # F/4: statement timeout of each query, and of the renewal step
    connect_timeout: int  # libpq connect_timeout (at least 2, libpq's minimum)
    keepalives_idle: int
    keepalives_interval: int
    keepalives_count: int
    tcp_user_timeout_ms: int

    @classmethod
    def from_failover(cls, failover: timedelta) -> LeaderTimings:
        f = failover.total_seconds()
        if f <= 0:
            raise ValueError("failover must be positive")
        detect = 0.6 * f
        idle = max(1, int(0.4 * f))
        interval = max(1, int(0.2 * f / 3))
        count = max(1, min(3, int((detect - idle) / interval)))
        return cls(
            failover=f,
            step_interval=min(1.0, f / 10),
            fence_after=f / 2,
            stale_after=detect,
            op_timeout=f / 4,
            connect_timeout=max(2, math.ceil(f / 4)),
            keepalives_idle=idle,
            keepalives_interval=interval,
            keepalives_count=count,
            tcp_user_timeout_ms=max(1000, int(detect * 1000)),
        )

    @property
    def keepalive_detection(self) -> int:
        """Seconds from the last traffic until keepalives give a silent peer up."""
        return self.keepalives_idle + self.keepalives_interval * self.keepalives_count

    def libpq_params(self) -> dict[str, Any]:
        """Client-side connection parameters of the lock's connection."""
        return {
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle,
            "keepalives_interval": self.keepalives_interval,
            "keepalives_count": self.keepalives_count,
            "tcp_user_timeout": self.tcp_user_timeout_ms,
            "connect_timeout": self.connect_timeout,
        }

    def server_settings(self) -> dict[str, str]:
        """Session settings of the lock's backend (server-side keepalives free the lock)."""
        return {
            "tcp_keepalives_idle": str(self.keepalives_idle),
            "tcp_keepalives_interval": str(self.keepalives_interval),
            "tcp_keepalives_count": str(self.keepalives_count),
            "tcp_user_timeout": str(self.tcp_user_timeout_ms),
            "statement_timeout": str(max(1, int(self.op_timeout * 1000))),
        }
