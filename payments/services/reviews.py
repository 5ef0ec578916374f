"""Staff review of flagged payments: flagging by hand and deciding."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import transaction

from orders.audit import Actor, apply_transition
from payments.models import (
    PaymentTransaction,
)
from payments.selectors import (
    payment_failure_kind as payment_failure_kind,  # kept importable from here
)
from payments.services.core import lock_payment, payment_flag


def payment_flag_for_review(
    *, payment_id: UUID, reason: str, actor: Actor, details: dict[str, Any] | None = None
) -> PaymentTransaction:
    """Put a payment in the staff review queue (a provider reports something we did not do:
    a refund made outside orderpay, a second PaymentIntent, ...). Idempotent per reason."""
    with transaction.atomic():
        _, payment = lock_payment(payment_id)
        payment_flag(payment, reason, actor=actor, details=details)
    return payment


def payment_review_decide(
    *, payment_id: UUID, approve: bool, note: str, actor: Actor
) -> PaymentTransaction:
    with transaction.atomic():
        _, payment = lock_payment(payment_id)
        apply_transition(
            payment,
            "approve_review" if approve else "reject_review",
            field_name="review_status",
            actor=actor,
            order_id=payment.order_id,
            entity="review",
            payment_id=payment.id,
            details={"note": note},
            args=(note,),
        )
    return payment
