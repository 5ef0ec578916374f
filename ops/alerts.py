"""Alerts to the operators, once per incident.

Each check measures one condition; above its threshold it opens an ``Incident`` (at most one
open per key, enforced by a partial unique constraint) and the operators
(``OPS_ALERT_EMAILS``) get one email. While the condition stays, the incident only records
that it was seen again. When the condition clears the incident is resolved (with an email
saying so); a later crossing opens a new incident and alerts again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from ops.metrics import WEBHOOK_BACKLOG_STATES
from ops.models import Incident, TaskCounter
from orders.models import OrderPaymentEvent
from payments.models import ChainCursor, WebhookEvent

logger = logging.getLogger("orderpay.alerts")


@dataclass
class Finding:
    key: str
    title: str
    firing: bool
    details: dict[str, Any] = field(default_factory=dict)


def check_payment_failure_rate() -> list[Finding]:
    since = timezone.now() - settings.ALERT_PAYMENT_FAILURE_WINDOW
    counts = OrderPaymentEvent.objects.filter(
        entity="payment", created_at__gte=since, action__in=("fail", "confirm")
    ).aggregate(failed=Count("id", filter=Q(action="fail")), total=Count("id"))
    total, failed = counts["total"], counts["failed"]
    rate = failed / total if total else 0.0
    firing = total >= settings.ALERT_PAYMENT_FAILURE_MIN_COUNT and (
        rate >= settings.ALERT_PAYMENT_FAILURE_RATE
    )
    return [
        Finding(
            "payment_failure_rate",
            f"Payment failure rate {rate:.0%} over the last "
            f"{settings.ALERT_PAYMENT_FAILURE_WINDOW}",
            firing,
            {"failed": failed, "total": total, "rate": round(rate, 4)},
        )
    ]


def check_webhook_backlog() -> list[Finding]:
    now = timezone.now()
    backlog = WebhookEvent.objects.filter(status__in=WEBHOOK_BACKLOG_STATES).aggregate(
        n=Count("id"), oldest=Min("received_at")
    )
    age = (now - backlog["oldest"]).total_seconds() if backlog["oldest"] else 0.0
    firing = backlog["n"] >= settings.ALERT_WEBHOOK_BACKLOG or (
        age >= settings.ALERT_WEBHOOK_BACKLOG_AGE.total_seconds()
    )
    return [
        Finding(
            "webhook_backlog",
            f"Webhook backlog: {backlog['n']} unprocessed, oldest {age:.0f} s",
            firing,
            {"backlog": backlog["n"], "oldest_age_seconds": round(age)},
        )
    ]


def check_chain_lag() -> list[Finding]:
    now = timezone.now()
    findings = []
    for cursor in ChainCursor.objects.all():
        age = (now - cursor.updated_at).total_seconds()
        head = cursor.head_number
        blocks = max(0, head - cursor.block_number) if head is not None else None
        firing = age >= settings.ALERT_CHAIN_LAG_SECONDS or (
            blocks is not None and blocks >= settings.ALERT_CHAIN_LAG_BLOCKS
        )
        findings.append(
            Finding(
                f"chain_lag:{cursor.chain_id}",
                f"Chain {cursor.chain_id} monitor behind: cursor {age:.0f} s old"
                + (f", {blocks} blocks behind the head" if blocks is not None else ""),
                firing,
                {"age_seconds": round(age), "lag_blocks": blocks, "block": cursor.block_number},
            )
        )
    return findings


def check_workers_silent() -> list[Finding]:
    """No scheduled job has finished for ALERT_WORKERS_SILENT_SECONDS (their successes are
    recorded by the workers): every worker is stopped, or none reaches the broker."""
    from ops.schedule import scheduled_task_names

    last = TaskCounter.objects.filter(event="success", task__in=scheduled_task_names()).aggregate(
        at=Max("updated_at")
    )["at"]
    if last is None:  # nothing ran yet (a new installation): nothing to compare with
        return []
    age = (timezone.now() - last).total_seconds()
    return [
        Finding(
            "workers_silent",
            f"No scheduled job finished for {age:.0f} s: are the workers running?",
            age >= settings.ALERT_WORKERS_SILENT_SECONDS,
            {"last_success_age_seconds": round(age)},
        )
    ]


CHECKS = (check_payment_failure_rate, check_webhook_backlog, check_chain_lag, check_workers_silent)


def _notify(subject: str, body: str) -> None:
    recipients = list(settings.OPS_ALERT_EMAILS)
    if not recipients:
        logger.warning("alert without OPS_ALERT_EMAILS: %s", subject)
        return
    send_mail(f"[orderpay] {subject}", body, None, recipients)


def incident_open(finding: Finding) -> Incident | None:
    """Open the incident for ``finding`` unless one is open; return it only if it is new."""
    now = timezone.now()
    if Incident.objects.filter(key=finding.key, resolved_at__isnull=True).update(
        last_seen_at=now, details=finding.details
    ):
        unsent = Incident.objects.filter(key=finding.key, resolved_at__isnull=True, notified=False)
        for incident in unsent:  # the first email failed: try again, still once per incident
            _send_alert(incident, finding)
        return None
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                key=finding.key, title=finding.title[:200], details=finding.details
            )
    except IntegrityError:  # another process opened it at the same moment
        return None
    logger.error("incident opened: %s", finding.title, extra={"incident": finding.key})
    _send_alert(incident, finding)
    return incident


def _send_alert(incident: Incident, finding: Finding) -> None:
    try:
        _notify(f"ALERT {finding.title}", f"{finding.title}\n\nDetails: {finding.details}\n")
    except Exception:
        logger.exception("could not send the alert for %s; next pass tries again", finding.key)
        return
    Incident.objects.filter(pk=incident.pk).update(notified=True)


def incident_resolve(key: str) -> Incident | None:
    with transaction.atomic():
        incident = (
            Incident.objects.select_for_update().filter(key=key, resolved_at__isnull=True).first()
        )
        if incident is None:
            return None
        incident.resolved_at = timezone.now()
        incident.save(update_fields=["resolved_at"])
    _notify(
        f"RESOLVED {incident.title}",
        f"Resolved after {incident.resolved_at - incident.opened_at}.\n",
    )
    logger.warning("incident resolved: %s", key, extra={"incident": key})
    return incident


def alerts_check() -> dict[str, list[str]]:
    """One pass over every check: open new incidents, resolve cleared ones."""
    opened, resolved = [], []
    seen_keys = set()
    for check in CHECKS:
        for finding in check():
            seen_keys.add(finding.key)
            if finding.firing:
                if incident_open(finding):
                    opened.append(finding.key)
            elif incident_resolve(finding.key):
                resolved.append(finding.key)
    # A chain that disappeared (cursor removed) no longer fires.
    for key in (
        Incident.objects.filter(resolved_at__isnull=True)
        .exclude(key__in=seen_keys)
        .values_list("key", flat=True)
    ):
        if incident_resolve(key):
            resolved.append(key)
    return {"opened": opened, "resolved": resolved}
