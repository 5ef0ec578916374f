"""Listeners on the payments signals (sent on commit): enqueue one email task per event."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from notifications.events import notification_for_change
from notifications.services import notification_enqueue
from orders.models import OrderPaymentEvent
from payments.models import PaymentStatus, PaymentTransaction
from payments.signals import payment_status_changed, refund_status_changed


@receiver(payment_status_changed, dispatch_uid="notifications.payment_status_changed")
def on_payment_status_changed(
    sender: Any, payment_id: Any, to_state: str, from_state: str = "", **kwargs: Any
) -> None:
    method = ""
    dispute_number = 1
    if to_state == PaymentStatus.COMPLETED:
        method = (
            PaymentTransaction.objects.filter(pk=payment_id)
            .values_list("method", flat=True)
            .first()
            or ""
        )
    elif to_state == PaymentStatus.DISPUTED:
        dispute_number = OrderPaymentEvent.objects.filter(
            payment_id=payment_id, entity="payment", to_state=PaymentStatus.DISPUTED
        ).count()
    notification_enqueue(
        notification_for_change(
            entity="payment",
            payment_id=payment_id,
            to_state=to_state,
            from_state=from_state,
            method=method,
            dispute_number=dispute_number,
        )
    )


@receiver(refund_status_changed, dispatch_uid="notifications.refund_status_changed")
def on_refund_status_changed(
    sender: Any, refund_id: Any, payment_id: Any, to_state: str, **kwargs: Any
) -> None:
    notification_enqueue(
        notification_for_change(
            entity="refund", payment_id=payment_id, refund_id=refund_id, to_state=to_state
        )
    )
