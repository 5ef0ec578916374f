"""Listeners on the payments signals (sent on commit): enqueue the receipt tasks."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from common.tasks import enqueue_on_commit
from payments.models import PaymentStatus, RefundStatus
from payments.signals import payment_status_changed, refund_status_changed
from receipts.models import PaymentReceipt

log = logging.getLogger(__name__)


@receiver(payment_status_changed, dispatch_uid="receipts.payment_status_changed")
def on_payment_status_changed(
    sender: Any, payment_id: Any, to_state: str, from_state: str = "", **kwargs: Any
) -> None:
    issue = to_state == PaymentStatus.CONFIRMED or (
        to_state == PaymentStatus.COMPLETED and from_state != PaymentStatus.CONFIRMED
    )
    if not issue:
        return
    if (
        to_state == PaymentStatus.COMPLETED
        and PaymentReceipt.objects.filter(payment_id=payment_id, kind="receipt").exists()
    ):
        return
    # robust: a failed enqueue is logged and left to the sweeper, never raised into payments.
    enqueue_on_commit("receipts.tasks.issue_payment_receipt", str(payment_id))


@receiver(refund_status_changed, dispatch_uid="receipts.refund_status_changed")
def on_refund_status_changed(sender: Any, refund_id: Any, to_state: str, **kwargs: Any) -> None:
    if to_state != RefundStatus.SUCCEEDED:
        return
    enqueue_on_commit("receipts.tasks.issue_credit_note", str(refund_id))
