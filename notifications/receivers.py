"""Listeners on the payments signals (sent on commit): enqueue one email task per event."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver

from notifications.events import NotificationEvent, notification_for_change
from orders.models import OrderPaymentEvent
from payments.models import PaymentStatus, PaymentTransaction
from payments.signals import payment_status_changed, refund_status_changed


def enqueue(event: NotificationEvent | None) -> None:
    if event is None:
        return
    from notifications.tasks import send_payment_notification

    args = (
        str(event.kind),
        event.event_key,
        str(event.payment_id),
        str(event.refund_id) if event.refund_id else None,
    )
    # robust: a lost enqueue is logged (and found by the sweeper); it never breaks the payment.
    transaction.on_commit(lambda: send_payment_notification.delay(*args), robust=True)


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
    enqueue(
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
    enqueue(
        notification_for_change(
            entity="refund", payment_id=payment_id, refund_id=refund_id, to_state=to_state
        )
    )
