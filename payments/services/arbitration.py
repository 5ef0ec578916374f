"""Ending a dispute the platform arbitrates, whatever the payment's method: an escrow through
the contract's arbiter call (all to one side; the payment follows once the transactions are
final), any other payment by closing its dispute."""

from __future__ import annotations

from uuid import UUID

from common.money import sub
from orders.audit import Actor
from payments.models import PaymentMethod, PaymentTransaction
from payments.services.core import payment_get
from payments.services.disputes import payment_close_dispute
from payments.services.escrow import escrow_resolve


def payment_resolve_dispute(
    *, payment_id: UUID, release: bool, actor: Actor, note: str = ""
) -> tuple[PaymentTransaction, str]:
    """``release``: the seller keeps the money (dispute won), else it goes back to the buyer.
    Returns the payment and a sentence saying what was done."""
    payment = payment_get(payment_id)
    if payment.method == PaymentMethod.ESCROW:
        held = sub(payment.amount, payment.refunded_amount)
        sent = escrow_resolve(
            order_id=payment.order_id,
            buyer_amount=0 if release else held,
            seller_amount=held if release else 0,
            actor=actor,
        )
        return payment, f"Resolution sent on chain ({len(sent)} transaction(s))."
    payment = payment_close_dispute(
        payment_id=payment.id,
        actor=actor,
        outcome="won" if release else "lost",
        details={"note": note},
    )
    return payment, f"Dispute resolved: payment is {payment.status}."
