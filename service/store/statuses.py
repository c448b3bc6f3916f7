"""The delivery statuses and attempt outcomes as stored (plain strings: no SQLAlchemy here,
so the run-time code and the CLI read them without the schema's tables)."""

from __future__ import annotations

#: Delivery statuses. `sending` rows hold a lease; `delivered`, `dead`, `muted` and
#: `silenced` are final. `deferred` (a stage holds it until `next_attempt_at`) is due like
#: `pending` once its time comes; `muted` and `silenced` (a stage, a silence stopped it)
#: are never sent. See service/stages.py.
PENDING = "pending"
DEFERRED = "deferred"
SENDING = "sending"
DELIVERED = "delivered"
DEAD = "dead"
MUTED = "muted"
SILENCED = "silenced"
STATUSES = (PENDING, DEFERRED, SENDING, DELIVERED, DEAD, MUTED, SILENCED)
#: Statuses waiting for a send once `next_attempt_at` has come.
WAITING = (PENDING, DEFERRED)

#: Attempt outcomes.
OUTCOMES = ("ok", "retry", "permanent", "error")
