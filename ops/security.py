"""Security audit entries: who was refused what, with the request that carried it."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from common.logcontext import request_id_var
from ops.models import SecurityEvent

logger = logging.getLogger("orderpay.security")


def _client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


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
    with transaction.atomic():
        event = SecurityEvent.objects.create(
            kind=kind,
            user=user if getattr(user, "pk", None) else None,
            username=username[:150],
            ip_address=_client_ip(request),
            method=(request.method or "")[:8] if request is not None else "",
            path=request.path[:500] if request is not None else "",
            request_id=request_id_var.get()[:128],
            details=details or {},
        )
    logger.warning(
        "security event %s", kind, extra={"security_kind": kind, "username": event.username}
    )
    return event


def is_payment_path(path: str) -> bool:
    return "payment" in path or "refund" in path
