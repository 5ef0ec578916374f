"""Security audit entries: who was refused what, with the request that carried it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from common.clients import client_address
from common.logcontext import client_ip_var, request_id_var
from ops.models import SecurityEvent

logger = logging.getLogger("orderpay.security")


def _client_ip(request: HttpRequest | None) -> str | None:
    address = client_address(request) if request is not None else client_ip_var.get()
    return address or None


def security_event_record(
    *,
    kind: str,
    request: HttpRequest | None = None,
    user: Any = None,
    username: str = "",
    details: dict[str, Any] | None = None,
) -> SecurityEvent:
    """Store one entry. It is written in its own transaction (savepoint), so a refused
    request that rolls back still leaves its audit entry."""
    if user is None and request is not None:
        candidate = getattr(request, "user", None)
        user = candidate if getattr(candidate, "is_authenticated", False) else None
    username = username or getattr(user, "username", "") or ""
    ip = _client_ip(request)
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    source = (ip or username or "-")[:160]
    with transaction.atomic():
        event = (
            SecurityEvent.objects.select_for_update()
            .filter(kind=kind, source=source, minute=minute)
            .first()
        )
        if event is not None:  # the same source again this minute: counted, not stored again
            event.count = F("count") + 1
            event.last_seen_at = now
            event.save(update_fields=["count", "last_seen_at"])
            event.refresh_from_db(fields=["count"])
            return event
        try:
            with transaction.atomic():
                event = SecurityEvent.objects.create(
                    kind=kind,
                    user=user if getattr(user, "pk", None) else None,
                    username=username[:150],
                    ip_address=ip,
                    method=(request.method or "")[:8] if request is not None else "",
                    path=request.path[:500] if request is not None else "",
                    request_id=request_id_var.get()[:128],
                    details=details or {},
                    source=source,
                    minute=minute,
                    last_seen_at=now,
                )
        except IntegrityError:  # a concurrent request created this minute's row first
            SecurityEvent.objects.filter(kind=kind, source=source, minute=minute).update(
                count=F("count") + 1, last_seen_at=now
            )
            return SecurityEvent.objects.get(kind=kind, source=source, minute=minute)
    # logged once per source and minute: a flood does not flood the logs either
    logger.warning(
        "security event %s", kind, extra={"security_kind": kind, "username": event.username}
    )
    return event


def security_events_prune(*, now: datetime | None = None) -> int:
    """Delete security events older than ``SECURITY_EVENT_RETENTION_DAYS`` (beat, daily)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SECURITY_EVENT_RETENTION_DAYS)
    deleted, _ = SecurityEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def is_payment_path(path: str) -> bool:
    return "payment" in path or "refund" in path
