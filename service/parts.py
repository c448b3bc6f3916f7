"""How each part of a process is built from the settings, one builder per part: the
application root (`service/app.py`) builds a daemon's parts with these, and the one-shot
commands (`check`, `test-notify`, `calendar`, `history`) build the one part they need
with the same builder, so a command sees exactly what the daemon would.

Light to import: each builder imports its part's module when called, so `earnwatch check`
never loads the store or the web edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from service.clock import Clock
from service.config import Settings
from service.health import HealthState
from service.logs import SecretMask
from service.rulefile import RuleFile

if TYPE_CHECKING:
    from service.notify.base import Notifier
    from service.providers.failover import FailoverProvider
    from service.stages import Stage
    from service.store import Store

#: A leader with no evaluation pass for this long is unhealthy (a pass runs every
#: TIME_EVALUATION; this leaves room for slow provider calls before it).
EVALUATION_STALE: Final = timedelta(minutes=15)


def rule_file_for(
    settings: Settings,
    path: Path,
    *,
    env_file: str | Path | None = ".env",
    mask: SecretMask | None = None,
) -> RuleFile:
    """The rule file at `path`, validated against every registered channel type and
    checked by the SSRF guard; its channel secrets go into `mask` as it loads."""
    from service.notify import CHANNEL_CONFIGS
    from service.targets import channel_check

    return RuleFile(
        path,
        env_file=env_file,
        channel_configs=CHANNEL_CONFIGS,
        channel_check=channel_check(settings),
        mask=mask,
        max_bytes=settings.rules_max_bytes,
    )


def providers_for(settings: Settings, clock: Clock | None = None) -> FailoverProvider:
    """The providers of EARNWATCH_PROVIDERS behind one failover; raises ConfigError."""
    from service.providers import build_providers

    return build_providers(settings, clock=clock)


def notifiers_for(settings: Settings) -> dict[str, Notifier]:
    """One notifier per registered channel type; the caller closes each."""
    from service.notify import build_notifiers

    return build_notifiers(settings)


def store_for(settings: Settings, *, daemon: bool = False) -> Store:
    """The database of EARNWATCH_DATABASE_URL, migrated; raises StoreError."""
    from service.store import open_store

    return open_store(settings.database_url, daemon=daemon, failover=settings.failover)


def health_for(settings: Settings) -> HealthState:
    """What `/healthz` judges, with the staleness limits the settings imply."""
    stale = max(settings.off_hours_poll, settings.calendar_refresh / 6) * 3
    health = HealthState(stale_after=stale, start_grace=timedelta(minutes=2))
    health.evaluation_stale = EVALUATION_STALE
    return health


def stages_for(settings: Settings, store: Store) -> Sequence[Stage]:
    """The stages every alert passes, in order, between the engine and the outbox
    (`service/stages.py`), in order: the silences (`service/silences.py`), then the quiet
    hours of each channel (`service/quiet.py`)."""
    from service.quiet import QuietHoursStage
    from service.silences import SilenceStage

    return [SilenceStage(store), QuietHoursStage()]
