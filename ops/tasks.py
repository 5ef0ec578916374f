from __future__ import annotations

from celery import shared_task

from common.locks import one_at_a_time
from ops.alerts import alerts_check
from ops.security import security_events_prune


@shared_task(name="ops.check_alerts", acks_late=True)
@one_at_a_time("ops.check_alerts")
def check_alerts() -> dict[str, list[str]]:
    return alerts_check()


@shared_task(name="ops.prune_security_events", acks_late=True)
@one_at_a_time("ops.prune_security_events")
def prune_security_events() -> int:
    return security_events_prune()
