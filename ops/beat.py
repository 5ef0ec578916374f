"""One beat at a time: django-celery-beat's database scheduler (staff keep editing the
schedule in the admin) behind a lease, so a second beat, started by mistake or as a standby,
sends nothing until the first stops renewing it.

The lease is a cache key (Redis in production, shared by every host) holding the beat's id for
``BEAT_LEASE_SECONDS``; the holder renews it on every tick (ticks come at least every few
seconds), another beat asks again on each of its ticks and takes over within the lease of the
holder's death. The jobs also hold a lock each (``common.locks.one_at_a_time``), so even two
leaders for a moment never run one job twice at once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django_celery_beat.schedulers import DatabaseScheduler

from ops.alerts import alerts_check

logger = logging.getLogger(__name__)
LEASE_KEY = "beat:leader"


def beat_lease(beat_id: str, seconds: int | None = None) -> bool:
    """True if ``beat_id`` holds the lease now (taken or renewed), False if another beat does."""
    seconds = seconds or settings.BEAT_LEASE_SECONDS
    if cache.add(LEASE_KEY, beat_id, seconds):
        logger.info("beat %s holds the schedule", beat_id)
        return True
    if cache.get(LEASE_KEY) == beat_id:
        cache.touch(LEASE_KEY, seconds)
        return True
    return False


class SingleBeatScheduler(DatabaseScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.beat_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._was_leader: bool | None = None
        self._alerts_at = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> Any:
        leader = beat_lease(self.beat_id)
        if not leader and self._was_leader is not False:
            logger.warning("beat %s waits: another beat holds the schedule", self.beat_id)
        self._was_leader = leader
        if not leader:
            return min(self.max_interval, max(1, settings.BEAT_LEASE_SECONDS // 3))
        self._evaluate_alerts()
        return super().tick(*args, **kwargs)

    def _evaluate_alerts(self) -> None:
        """The alerts, every ALERT_EVALUATE_SECONDS, in beat's own process: they fire when
        every worker is stopped (the worker job ``ops.check_alerts`` stops with them)."""
        now = time.monotonic()
        if now - self._alerts_at < settings.ALERT_EVALUATE_SECONDS:
            return
        self._alerts_at = now
        try:
            alerts_check()
        except Exception:  # beat keeps scheduling whatever the alert path does
            logger.exception("beat could not evaluate the alerts")
