"""Beat jobs for card payments: reconciliation and the webhook retry sweep."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="payments.reconcile_stripe", acks_late=True)
def reconcile_stripe_task() -> int:
    from .reconcile import reconcile_stripe

    return len(reconcile_stripe())


@shared_task(name="payments.retry_stripe_webhook_events", acks_late=True)
def retry_stripe_webhook_events() -> int:
    """Failed Stripe events whose backoff has passed, and events whose enqueue was lost."""
    from ...webhook_replay import webhook_events_due, webhook_replay

    ids = list(webhook_events_due(provider="stripe").values_list("id", flat=True)[:500])
    webhook_replay(ids)
    return len(ids)
