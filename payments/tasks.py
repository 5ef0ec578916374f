"""Celery tasks: each takes ids, reloads, and is safe to run twice."""

from __future__ import annotations

from celery import shared_task

from .idempotency import cleanup_idempotency_keys as cleanup_idempotency_keys
from .webhooks import webhook_process


@shared_task(bind=True, max_retries=8, acks_late=True)
def process_webhook_event(self, event_id: int) -> None:  # type: ignore[no-untyped-def]
    from .webhooks import webhook_backoff

    try:
        webhook_process(event_id)
    except Exception as exc:
        if self.request.is_eager:
            return  # stored as failed with its error; the sweeper or a replay runs it again
        raise self.retry(
            exc=exc, countdown=webhook_backoff(self.request.retries + 1).total_seconds()
        ) from exc


# --- beat jobs (ops issue): each runs one pass; a pass is safe to run twice -----------------
@shared_task(name="payments.retry_failed_payments", acks_late=True)
def retry_failed_payments() -> dict[str, list[str]]:
    from .retry import retry_pass

    return retry_pass().as_dict()


@shared_task(name="payments.expire_stale_payments", acks_late=True)
def expire_stale_payments() -> list[str]:
    from .jobs import payments_expire_stale

    return payments_expire_stale()


@shared_task(name="payments.sweep_webhook_events", acks_late=True)
def sweep_webhook_events() -> list[int]:
    """Enqueue again the inbox events nobody processed (the task locks the row and skips
    events already processed, so a double enqueue is harmless)."""
    from .jobs import webhook_events_to_sweep

    ids = webhook_events_to_sweep()
    for event_id in ids:
        process_webhook_event.delay(event_id)
    return ids


@shared_task(name="payments.sweep_pending_refunds", acks_late=True)
def sweep_pending_refunds() -> dict[str, str]:
    """Reconcile or send refunds left pending without a provider reference."""
    from .jobs import refunds_sweep_pending

    return refunds_sweep_pending()


from .chain_tasks import poll_chain, poll_chains  # noqa: E402, F401  (registers the chain tasks)
from .providers.stripe import tasks as _stripe_tasks  # noqa: E402, F401
