"""The dead man's switch: a GET to `EARNWATCH_HEARTBEAT_URL` every
`EARNWATCH_HEARTBEAT_INTERVAL`, only while the daemon is healthy, so that the user's
monitor (healthchecks.io, Alertmanager's Watchdog, Uptime Kuma...) notices when Earnwatch
stops watching, whatever the reason: the process is gone, or it runs but records nothing,
evaluates nothing or sees only stale prices.

Promises: "healthy" is exactly what `/healthz` answers 200 to (`HealthState.check`: a
standby replica is healthy, it is ready to take over), except that no beat is sent while
the daemon is still `starting` (it has proven nothing yet). The URL is a secret (a ping
URL is enough to fake the beat): it is never logged, only its host. Each beat goes through
the SSRF guard like a notification, has a total deadline, never reads the reply's body,
and never raises: a failure is logged once (and again when it recovers) and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from service.config import Settings
from service.errors import UnsafeTargetError
from service.httpclient import TargetGuard, build_client, redact_url
from service.metrics import Metrics

if TYPE_CHECKING:  # httpx loads with the client `build_heartbeat` makes, for a URL set
    import httpx

log = logging.getLogger(__name__)

#: () -> (healthy, reason), as `/healthz` sees it.
HealthCheck = Callable[[], tuple[bool, str]]


class Heartbeat:
    """Sends one beat per `beat()` call when healthy; the daemon calls it every `interval`."""

    def __init__(
        self,
        url: str,
        *,
        interval: timedelta,
        deadline: float,
        client: httpx.AsyncClient,
        healthy: HealthCheck,
        metrics: Metrics,
    ) -> None:
        self._url = url
        self.interval = interval
        self.deadline = deadline
        self._client = client
        self._healthy = healthy
        self._metrics = metrics
        self.where = redact_url(url)
        self._withheld: str | None = None  # why beats stopped (logged once)
        self._failing: str | None = None  # the failure logged last

    async def beat(self) -> bool:
        """One beat if healthy. Returns whether the monitor acknowledged one (2xx)."""
        try:
            healthy, reason = self._healthy()
        except Exception:  # a failing check is an unhealthy daemon, never a crash
            healthy, reason = False, "health check failed"
        if not healthy or reason == "starting":
            self._withhold(reason if not healthy else None)
            return False
        if self._withheld is not None:
            log.info("heartbeat: healthy again (%s), beats resume", reason)
            self._withheld = None
        failure = await self._send()
        self._metrics.heartbeat("sent" if failure is None else "failed")
        if failure is not None:
            if failure != self._failing:
                log.warning("heartbeat to %s failed: %s", self.where, failure)
            self._failing = failure
            return False
        if self._failing is not None:
            log.info("heartbeat to %s acknowledged again", self.where)
            self._failing = None
        return True

    async def tick(self) -> None:
        """`beat()` as a scheduler job."""
        await self.beat()

    def _withhold(self, reason: str | None) -> None:
        self._metrics.heartbeat("skipped")
        if reason is not None and self._withheld is None:
            log.warning("heartbeat withheld while unhealthy: %s", reason)
            self._withheld = reason

    async def _send(self) -> str | None:
        """The failure of one GET as a short text (never the URL), or None on 2xx."""
        import httpx  # loaded with the client already

        try:
            async with asyncio.timeout(self.deadline):
                async with self._client.stream("GET", self._url) as response:
                    status = response.status_code  # the body is never read: it could be huge
        except TimeoutError:
            return f"no reply within {self.deadline:g} s"
        except UnsafeTargetError as exc:
            return str(exc)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def aclose(self) -> None:
        await self._client.aclose()


def build_heartbeat(settings: Settings, healthy: HealthCheck, metrics: Metrics) -> Heartbeat | None:
    """The heartbeat `settings` ask for, or None without `EARNWATCH_HEARTBEAT_URL`."""
    if settings.heartbeat_url is None or not settings.heartbeat_url.get_secret_value():
        return None
    interval = settings.heartbeat_interval
    deadline = min(settings.http_timeout, interval).total_seconds()
    guard = TargetGuard(
        allow_private=settings.allow_private_targets,
        allowed_hosts=settings.allowed_host_names,
    )
    return Heartbeat(
        settings.heartbeat_url.get_secret_value(),
        interval=interval,
        deadline=deadline,
        client=build_client(timeout=deadline, guard=guard),
        healthy=healthy,
        metrics=metrics,
    )
