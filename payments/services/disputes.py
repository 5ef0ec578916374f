"""Disputes: opened and closed on a payment, moving its order with it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import transaction

from common.errors import (
    ValidationFailed,
)
from common.money import add
from orders.audit import Actor, apply_transition
from payments.models import (
    PaymentTransaction,
    Refund,
    RefundStatus,
)
from payments.selectors import (
    payment_failure_kind as payment_failure_kind,  # kept importable from here
)
from payments.services.core import (
    P,
    announce_refund,
    lock_payment,
    payment_flag,
    payment_follow_refunds,
    payment_transition,
)


# --- disputes -------------------------------------------------------------------------------
def payment_open_dispute(
    *, payment_id: UUID, actor: Actor, details: dict[str, Any] | None = None
) -> PaymentTransaction:
    with transaction.atomic():
        _, payment = lock_payment(payment_id)
        if payment.status != P.DISPUTED:
            payment_transition(payment, "open_dispute", actor=actor, details=details)
        payment_flag(payment, "dispute", actor=actor, details=details)
    return payment


def payment_close_dispute(
    *, payment_id: UUID, actor: Actor, outcome: str, details: dict[str, Any] | None = None
) -> PaymentTransaction:
    """``outcome``: ``won`` (money stays with the seller), ``lost`` (returned to the buyer, as
    a succeeded refund), ``released`` (escrow paid out to the seller), or ``split`` (part went
    back to the buyer as refunds already recorded, the rest to the seller)."""
    if outcome not in ("won", "lost", "released", "split"):
        raise ValidationFailed("Unknown dispute outcome.", code="invalid_dispute_outcome")
    with transaction.atomic():
        _, payment = lock_payment(payment_id)
        if payment.status != P.DISPUTED:
            return payment  # closed already
        info = {"outcome": outcome, **(details or {})}
        if outcome in ("won", "split"):
            payment_transition(payment, "close_dispute", actor=actor, details=info)
            payment_follow_refunds(payment, actor=actor)  # refunds that settled meanwhile
        elif outcome == "released":
            payment_transition(payment, "release_after_dispute", actor=actor, details=info)
        else:
            # The buyer got the whole amount back through the dispute: refunds not settled yet
            # are superseded (failed, never sent again), and the dispute's refund covers what
            # the succeeded ones did not.
            for pending in Refund.objects.select_for_update().filter(
                payment=payment, status__in=(RefundStatus.PENDING, RefundStatus.UNKNOWN)
            ):
                before = pending.status
                pending.payment = payment
                apply_transition(
                    pending,
                    "fail",
                    args=("superseded: the dispute was lost",),
                    actor=actor,
                    order_id=payment.order_id,
                    entity="refund",
                    payment_id=payment.id,
                    refund_id=pending.id,
                    details={**info, "superseded_by": "dispute"},
                )
                announce_refund(pending, before)
            succeeded = add(
                *Refund.objects.filter(payment=payment, status=RefundStatus.SUCCEEDED).values_list(
                    "amount", flat=True
                )
            )
            room = payment.amount - succeeded
            if room > 0:
                refund = Refund.objects.create(
                    payment=payment, amount=room, currency=payment.currency, reason="dispute lost"
                )
                refund.payment = payment
                apply_transition(
                    refund,
                    "succeed",
                    actor=actor,
                    order_id=payment.order_id,
                    entity="refund",
                    payment_id=payment.id,
                    refund_id=refund.id,
                    details=info,
                )
                payment.refunded_amount = payment.amount
                payment.save(update_fields=["refunded_amount", "updated_at"])
                announce_refund(refund, "")
            payment_transition(payment, "refund_fully", actor=actor, details=info)
    return payment
