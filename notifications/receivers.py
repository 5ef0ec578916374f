"""Listeners on the payments signals (sent on commit): enqueue one email task per event."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver

from orders.models import OrderPaymentEvent
from payments.models import PaymentMethod, PaymentStatus, PaymentTransaction, RefundStatus
from payments.signals import payment_status_changed, refund_status_changed

from .models import NotificationKind as K


def _enqueue(kind: str, event_key: str, payment_id: Any, refund_id: Any = None) -> None:
    from .tasks import send_payment_notification

    args = (str(kind), event_key, str(payment_id), str(refund_id) if refund_id else None)
    # robust: a lost enqueue is logged; it never breaks the payment that announced it.
    transaction.on_commit(lambda: send_payment_notification.delay(*args), robust=True)


@receiver(payment_status_changed, dispatch_uid="notifications.payment_status_changed")
def on_payment_status_changed(
    sender: Any, payment_id: Any, to_state: str, from_state: str = "", **kwargs: Any
) -> None:
    if to_state == PaymentStatus.CONFIRMED and from_state != PaymentStatus.DISPUTED:
        _enqueue(K.PAYMENT_CONFIRMED, f"{K.PAYMENT_CONFIRMED}:{payment_id}", payment_id)
    elif to_state == PaymentStatus.FAILED:
        _enqueue(K.PAYMENT_FAILED, f"{K.PAYMENT_FAILED}:{payment_id}", payment_id)
    elif to_state == PaymentStatus.DISPUTED:
        # A payment may be disputed more than once: the audit row of this opening names it.
        opened = OrderPaymentEvent.objects.filter(
            payment_id=payment_id, entity="payment", to_state=PaymentStatus.DISPUTED
        ).count()
        _enqueue(K.PAYMENT_DISPUTED, f"{K.PAYMENT_DISPUTED}:{payment_id}:{opened}", payment_id)
    elif to_state == PaymentStatus.COMPLETED:
        method = (
            PaymentTransaction.objects.filter(pk=payment_id)
            .values_list("method", flat=True)
            .first()
        )
        if method == PaymentMethod.ESCROW:
            _enqueue(K.ESCROW_RELEASED, f"{K.ESCROW_RELEASED}:{payment_id}", payment_id)


@receiver(refund_status_changed, dispatch_uid="notifications.refund_status_changed")
def on_refund_status_changed(
    sender: Any, refund_id: Any, payment_id: Any, to_state: str, **kwargs: Any
) -> None:
    if to_state == RefundStatus.SUCCEEDED:
        _enqueue(K.PAYMENT_REFUNDED, f"{K.PAYMENT_REFUNDED}:{refund_id}", payment_id, refund_id)
