"""What every payment service stands on: the provider data of a payment or refund, row
locks, transitions with their audit events and announcements, and the review flags a
transition raises.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from common.errors import (
    NotFound,
    ValidationFailed,
)
from common.money import add, parse_amount
from orders.audit import Actor, apply_transition
from orders.models import Order
from orders.services import order_lock
from payments.models import (
    PAID_STATES,
    UNSUCCESSFUL_STATES,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    RefundStatus,
)
from payments.providers.base import (
    PaymentData,
    RefundData,
)
from payments.selectors import (
    payment_failure_kind as payment_failure_kind,  # kept importable from here
)
from payments.services.sync import order_sync
from payments.signals import (
    announce,
    order_payments_changed,
    payment_status_changed,
    refund_status_changed,
)

P = PaymentStatus


#: Payment states only the refund and dispute services may set (they keep the refund rows,
#: the refunded amount and the dispute's memory consistent).
OWN_SERVICE_STATES = frozenset({P.PARTIALLY_REFUNDED, P.REFUNDED, P.DISPUTED})


TX_HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")


#: Fields a provider result may set on a payment; status never comes this way.
RESULT_FIELDS = frozenset(
    {
        "payment_intent_id",
        "chain_id",
        "token_address",
        "amount_base_units",
        "pay_to_address",
        "transaction_hash",
        "sender_address",
        "block_number",
        "block_hash",
        "confirmations",
        "required_confirmations",
        "gas_used",
        "effective_gas_price",
        "escrow_id",
        "chain_payment_id",
        "deposit_address",
        "contract_address",
        "expires_at",
        "received_base_units",
    }
)


# --- reading and locking --------------------------------------------------------------------
def payment_data(payment: PaymentTransaction) -> PaymentData:
    order = payment.order
    return PaymentData(
        payment_id=payment.id,
        order_id=payment.order_id,
        method=payment.method,
        amount=payment.amount,
        currency=payment.currency,
        idempotency_key=f"orderpay-payment-{payment.id}",
        buyer_id=order.buyer_id,
        seller_id=order.seller_id,
        buyer_email=getattr(order.buyer, "email", ""),
        payment_intent_id=payment.payment_intent_id,
        chain_id=payment.chain_id,
        transaction_hash=payment.transaction_hash,
        token_address=payment.token_address,
        pay_to_address=payment.pay_to_address,
        amount_base_units=int(payment.amount_base_units)
        if payment.amount_base_units is not None
        else None,
        escrow_id=payment.escrow_id,
        chain_payment_id=payment.chain_payment_id,
        contract_address=payment.contract_address,
        sender_address=payment.sender_address,
        expires_at=payment.expires_at,
        details=dict(payment.provider_data),
        created_at=payment.created_at,
    )


def refund_data(refund: Refund) -> RefundData:
    return RefundData(
        refund_id=refund.id,
        payment=payment_data(refund.payment),
        amount=refund.amount,
        currency=refund.currency,
        idempotency_key=f"orderpay-refund-{refund.idempotency_key}",
        reason=refund.reason,
        provider_reference=refund.provider_reference,
    )


def payment_get(payment_id: UUID | str) -> PaymentTransaction:
    try:
        return PaymentTransaction.objects.select_related("order", "order__buyer").get(pk=payment_id)
    except (PaymentTransaction.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("Payment not found.", code="payment_not_found") from None


def lock_payment(payment_id: UUID | str) -> tuple[Order, PaymentTransaction]:
    """Lock the payment's order, then the payment (always in that order: no deadlocks)."""
    try:
        order_id = (
            PaymentTransaction.objects.filter(pk=payment_id)
            .values_list("order_id", flat=True)
            .first()
        )
    except (ValidationError, ValueError, TypeError):
        order_id = None
    if order_id is None:
        raise NotFound("Payment not found.", code="payment_not_found")
    order = order_lock(order_id)
    payment = PaymentTransaction.objects.select_for_update().get(pk=payment_id)
    payment.order = order
    return order, payment


def lock_refund(refund_id: UUID | str) -> tuple[Order, PaymentTransaction, Refund]:
    payment_id = Refund.objects.filter(pk=refund_id).values_list("payment_id", flat=True).first()
    if payment_id is None:
        raise NotFound("Refund not found.", code="refund_not_found")
    order, payment = lock_payment(payment_id)
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    refund.payment = payment
    return order, payment, refund


def payment_announcement(
    payment_id: UUID, order_id: UUID, before: str, after: str, actor_type: str
) -> None:
    """Tell the listeners (emails, receipts, the payment-status cache) a payment moved: sent
    after the commit that moved it."""
    announce(
        payment_status_changed,
        sender=PaymentTransaction,
        payment_id=payment_id,
        order_id=order_id,
        from_state=before,
        to_state=after,
        actor_type=actor_type,
    )
    announce(order_payments_changed, sender=PaymentTransaction, order_id=order_id)


def announce_payment(payment: PaymentTransaction, before: str, actor: Actor) -> None:
    after, pid, oid = str(payment.status), payment.id, payment.order_id
    transaction.on_commit(
        lambda: payment_announcement(pid, oid, before, after, actor.type), robust=True
    )


def announce_refund(refund: Refund, before: str) -> None:
    rid, pid, oid, after = refund.id, refund.payment_id, refund.payment.order_id, refund.status

    def send() -> None:
        announce(
            refund_status_changed,
            sender=Refund,
            refund_id=rid,
            payment_id=pid,
            order_id=oid,
            from_state=before,
            to_state=after,
        )
        announce(order_payments_changed, sender=Refund, order_id=oid)

    transaction.on_commit(send, robust=True)


def payment_transition(
    payment: PaymentTransaction,
    name: str,
    *,
    actor: Actor,
    details: dict[str, Any] | None = None,
    args: tuple[Any, ...] = (),
) -> str:
    """Run a status transition on a payment whose order and row the caller has locked."""
    before = payment.status
    after = apply_transition(
        payment,
        name,
        actor=actor,
        order_id=payment.order_id,
        entity="payment",
        payment_id=payment.id,
        details=details,
        args=args,
    )
    order_sync(payment.order, actor=actor, details={"payment_id": str(payment.id)})
    if after == P.CONFIRMED and before not in PAID_STATES:
        flag_unexpected_money(payment, before, actor=actor)
    announce_payment(payment, before, actor)
    return after


def high_value_threshold(currency: str) -> Decimal | None:
    """The amount from which a payment in ``currency`` goes to review (None: no threshold)."""
    value = settings.REVIEW_HIGH_VALUE_THRESHOLDS.get(currency)
    return None if value in (None, "") else parse_amount(value, currency)


def unexpected_money(
    payment: PaymentTransaction, before: str, order: Order, paid_total: Decimal
) -> list[tuple[str, dict[str, Any]]]:
    """The review flags money reaching ``payment`` calls for (late, on a cancelled order, of
    high value, more than the order asks): ``paid_total`` is what the order's payments hold
    with this one confirmed. No query: the set-based path decides with the same rule."""
    flags: list[tuple[str, dict[str, Any]]] = []
    if before in UNSUCCESSFUL_STATES:
        flags.append(("late_payment", {"previous_status": before}))
    if order.status == "cancelled":
        flags.append(("order_cancelled", {}))
    threshold = high_value_threshold(payment.currency)
    if threshold is not None and payment.amount >= threshold:
        flags.append(("high_value", {"amount": str(payment.amount), "threshold": str(threshold)}))
    if paid_total > order.amount:
        flags.append(
            ("overpaid", {"paid_total": str(paid_total), "order_amount": str(order.amount)})
        )
    return flags


def flag_unexpected_money(payment: PaymentTransaction, before: str, *, actor: Actor) -> None:
    """Money that arrived late, unexpectedly or in large amounts goes to staff review."""
    order = payment.order
    paid = add(
        *PaymentTransaction.objects.filter(order_id=order.id, status__in=PAID_STATES).values_list(
            "amount", flat=True
        )
    )
    for reason, details in unexpected_money(payment, before, order, paid):
        payment_flag(payment, reason, actor=actor, details=details)


def payment_flag(
    payment: PaymentTransaction, reason: str, *, actor: Actor, details: dict[str, Any] | None = None
) -> None:
    """Put a locked payment in the staff review queue with a reason (idempotent per reason)."""
    if payment.review_status == "flagged" and any(
        r.get("reason") == reason for r in payment.review_reasons
    ):
        return
    apply_transition(
        payment,
        "flag_for_review",
        field_name="review_status",
        actor=actor,
        order_id=payment.order_id,
        entity="review",
        payment_id=payment.id,
        details={"reason": reason, **(details or {})},
        args=(reason, details or {}),
    )
    transaction.on_commit(
        lambda: announce(
            order_payments_changed, sender=PaymentTransaction, order_id=payment.order_id
        ),
        robust=True,
    )


def payment_follow_refunds(payment: PaymentTransaction, *, actor: Actor) -> None:
    """Set the payment's refund state from its succeeded refunds (a dispute decides alone)."""
    if payment.status == P.DISPUTED:
        return
    refunded = add(
        *Refund.objects.filter(payment=payment, status=RefundStatus.SUCCEEDED).values_list(
            "amount", flat=True
        )
    )
    if refunded >= payment.amount and payment.status != P.REFUNDED:
        payment_transition(payment, "refund_fully", actor=actor)
    elif Decimal(0) < refunded < payment.amount and payment.status != P.PARTIALLY_REFUNDED:
        payment_transition(payment, "refund_partially", actor=actor)
    elif refunded == 0 and payment.status in (P.PARTIALLY_REFUNDED, P.REFUNDED):
        payment_transition(payment, "restore_after_refund_failure", actor=actor)


def transaction_hash_clean(value: Any) -> str:
    """THE check of a transaction hash given by a person (claims, manual refunds): 0x and 64
    hex digits, returned lowercase; else 400 ``invalid_transaction_hash``."""
    tx_hash = str(value or "").strip().lower()
    if not TX_HASH_RE.match(tx_hash):
        raise ValidationFailed(
            "A transaction hash is 0x and 64 hex digits.", code="invalid_transaction_hash"
        )
    return tx_hash
