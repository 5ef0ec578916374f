"""Beat job for card payments: reconciliation with Stripe."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="payments.reconcile_stripe", acks_late=True)
def reconcile_stripe_task() -> int:
    from .reconcile import reconcile_stripe

    return len(reconcile_stripe())
