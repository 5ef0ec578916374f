"""Running stored webhook events again: failed ones whose backoff has passed, ones whose
enqueue was lost, or named ones (``replay_webhook_events``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import WebhookEvent
from .webhooks import webhook_process

#: A received event not processed after this long lost its enqueue.
STUCK_AFTER = timedelta(minutes=5)


def webhook_events_due(*, provider: str | None = None) -> QuerySet[WebhookEvent]:
    """Failed events whose next attempt is due, and received events never processed."""
    now = timezone.now()
    events = WebhookEvent.objects.filter(
        Q(status=WebhookEvent.Status.FAILED, next_attempt_at__lte=now)
        | Q(status=WebhookEvent.Status.RECEIVED, received_at__lte=now - STUCK_AFTER)
    )
    return events.filter(provider=provider) if provider else events


def webhook_replay(event_ids: Iterable[int]) -> dict[int, str]:
    """Process each event once more (under its row lock); returns {id: status or error}."""
    outcome: dict[int, str] = {}
    for event_id in event_ids:
        try:
            event = webhook_process(event_id)
        except Exception as exc:
            outcome[event_id] = f"failed: {type(exc).__name__}: {exc}"
        else:
            outcome[event_id] = event.status if event is not None else "missing"
    return outcome
