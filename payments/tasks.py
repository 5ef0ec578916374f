"""Celery tasks: each takes ids, reloads, and is safe to run twice."""

from __future__ import annotations

from uuid import UUID

from celery import shared_task

from common.locks import one_at_a_time
from payments.chain.deposits import deposit_followups
from payments.chain.monitor import chain_poll
from payments.providers.chain.registry import all_chains
from payments.services.core import payment_announcement
from payments.services.expiry import (
    idempotency_keys_cleanup,
    payments_expire_stale,
    refunds_sweep_pending,
    webhook_events_to_sweep,
)
from payments.services.reconcile import reconcile_stripe
from payments.services.retries import retry_pass
from payments.webhooks.inbox import webhook_backoff, webhook_process


@shared_task(bind=True, max_retries=8, acks_late=True)
def process_webhook_event(self, event_id: int) -> None:  # type: ignore[no-untyped-def]
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
@one_at_a_time("payments.retry_failed_payments")
def retry_failed_payments() -> dict[str, list[str]]:
    return retry_pass().as_dict()


@shared_task(name="payments.expire_stale_payments", acks_late=True)
@one_at_a_time("payments.expire_stale_payments")
def expire_stale_payments() -> list[str]:
    return payments_expire_stale()


@shared_task(name="payments.sweep_webhook_events", acks_late=True)
@one_at_a_time("payments.sweep_webhook_events")
def sweep_webhook_events() -> list[int]:
    """Enqueue again the inbox events nobody processed (the task locks the row and skips
    events already processed, so a double enqueue is harmless)."""
    ids = webhook_events_to_sweep()
    for event_id in ids:
        process_webhook_event.delay(event_id)
    return ids


@shared_task(name="payments.sweep_pending_refunds", acks_late=True)
@one_at_a_time("payments.sweep_pending_refunds")
def sweep_pending_refunds() -> dict[str, str]:
    """Reconcile or send refunds left pending without a provider reference."""
    return refunds_sweep_pending()


@shared_task(name="payments.cleanup_idempotency_keys")
@one_at_a_time("payments.cleanup_idempotency_keys")
def cleanup_idempotency_keys() -> int:
    return idempotency_keys_cleanup()


@shared_task(name="payments.reconcile_stripe", acks_late=True)
@one_at_a_time("payments.reconcile_stripe")
def reconcile_stripe_task() -> int:
    """Beat job for card payments: reconciliation with Stripe."""
    return len(reconcile_stripe())


# --- the chain monitor: ``payments.poll_chains`` (beat) fans out one ``payments.poll_chain``
# per configured chain; each pass holds its chain's lock.


@shared_task(name="payments.poll_chain", acks_late=True, ignore_result=True)
def poll_chain(chain_id: int) -> dict:
    report = chain_poll(chain_id)
    return {
        "chain_id": report.chain_id,
        "http_requests": report.http_requests,
        "skipped": report.skipped,
        "error": report.error,
    }


@shared_task(name="payments.send_deposit_followups", ignore_result=True)
@one_at_a_time("payments.send_deposit_followups")
def send_deposit_followups() -> dict[int, int]:
    """Sweeps and excess returns that final deposits call for, per chain; a bounded number
    per run, the rest on the next."""
    return {chain.chain_id: deposit_followups(chain) for chain in all_chains()}


@shared_task(name="payments.poll_chains", ignore_result=True)
def poll_chains() -> list[int]:
    chain_ids = [chain.chain_id for chain in all_chains()]
    for chain_id in chain_ids:
        poll_chain.delay(chain_id)
    return chain_ids


@shared_task(name="payments.announce_payments", acks_late=True, ignore_result=True)
def announce_payments(moves: list[list[str]], actor_type: str) -> int:
    """Announce payments moved set-based (``payments.services.bulk``): each as one at a time
    would, so emails and receipts follow. ``moves``: [payment id, order id, before, after]."""
    for payment_id, order_id, before, after in moves:
        payment_announcement(UUID(payment_id), UUID(order_id), before, after, actor_type)
    return len(moves)
