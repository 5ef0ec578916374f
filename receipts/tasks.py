"""Celery tasks issuing receipts and credit notes; each takes an id and is safe to run twice.

A transient failure (the database or the storage not answering, a deadlock) is retried with
exponential backoff and jitter, up to 5 times within minutes; what still fails is left to
``receipts.sweep_missing_receipts`` (every 5 minutes), the backstop for lost enqueues too.
Anything else (a template or data error) is not retried: it fails the same way again.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from common.errors import Conflict
from common.locks import one_at_a_time
from receipts.services import (
    credit_note_issue_for_refund,
    receipt_issue_for_payment,
    receipts_missing,
)

#: Failures that may pass on their own: database connection/deadlock, storage I/O.
TRANSIENT = (OperationalError, InterfaceError, OSError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "max_retries": 5,
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "acks_late": True,
}


@shared_task(**RETRY)
def issue_payment_receipt(payment_id: str) -> str | None:
    try:
        receipt, _created = receipt_issue_for_payment(payment_id=payment_id)
    except Conflict:
        return None  # not (or no longer) paid: nothing to issue
    return receipt.number


@shared_task(**RETRY)
def issue_credit_note(refund_id: str) -> str | None:
    try:
        receipt, _created = credit_note_issue_for_refund(refund_id=refund_id)
    except Conflict:
        return None
    return receipt.number


@shared_task(name="receipts.sweep_missing_receipts", acks_late=True)
@one_at_a_time("receipts.sweep_missing_receipts")
def receipts_sweep() -> int:
    """Find paid payments and succeeded refunds whose issue was lost, and issue them."""
    payments, refunds = receipts_missing()
    for pid in payments:
        issue_payment_receipt.delay(str(pid))
    for rid in refunds:
        issue_credit_note.delay(str(rid))
    return len(payments) + len(refunds)
