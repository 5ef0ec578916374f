"""Celery task sending one event's emails; safe to run twice (see services)."""

from __future__ import annotations

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval

from common.locks import one_at_a_time
from notifications.services import notification_enqueue, notification_send, notifications_missing


@shared_task(max_retries=5, retry_backoff=True, retry_jitter=True, acks_late=True, bind=True)
def send_payment_notification(  # type: ignore[no-untyped-def]
    self, kind: str, event_key: str, payment_id: str, refund_id: str | None = None
) -> int:
    try:
        return notification_send(
            kind=kind, event_key=event_key, payment_id=payment_id, refund_id=refund_id
        )
    except Exception as exc:
        if self.request.is_eager:
            raise
        # Seconds, doubling up to 5 minutes (celery's default delay without a countdown is a
        # flat 3 minutes: a dropped database connection held the email that long).
        countdown = get_exponential_backoff_interval(1, self.request.retries, 300, True)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="notifications.sweep_unsent", acks_late=True)
@one_at_a_time("notifications.sweep_unsent")
def sweep_unsent() -> int:
    """Send the emails whose enqueue was lost or whose send failed (each send is idempotent
    per event and recipient)."""
    missing = notifications_missing()
    for event in missing:
        notification_enqueue(event)
    return len(missing)
