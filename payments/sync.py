"""The one rule that moves an order from its payments' states.

``order_target_status`` is a pure function (tested as a table); ``order_sync`` applies it to a
locked order through the order's own transitions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from orders.audit import Actor, apply_transition, transition_to
from orders.models import Order, OrderStatus
from orders.money import add

from .models import (
    OPEN_STATES,
    PAID_STATES,
    UNSUCCESSFUL_STATES,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    RefundStatus,
)

S = OrderStatus
AFTER_SHIPPING = (S.SHIPPED, S.DELIVERED, S.COMPLETED)


@dataclass(frozen=True)
class PaymentSummary:
    paid_total: Decimal = Decimal(0)  # payments that reached a paid state
    refunded_total: Decimal = Decimal(0)  # succeeded refunds
    pending_refund_total: Decimal = Decimal(0)  # refunds requested, not settled
    open_attempts: int = 0
    failed_attempts: int = 0
    disputed: bool = False
    all_settled: bool = False  # every paid payment is completed (escrow released)


def summarize(payments: Iterable[PaymentTransaction], refunds: Iterable[Refund]) -> PaymentSummary:
    payments = list(payments)
    paid = [p for p in payments if p.status in PAID_STATES]
    return PaymentSummary(
        paid_total=add(*(p.amount for p in paid)),
        refunded_total=add(*(r.amount for r in refunds if r.status == RefundStatus.SUCCEEDED)),
        pending_refund_total=add(
            *(r.amount for r in refunds if r.status in (RefundStatus.PENDING, RefundStatus.UNKNOWN))
        ),
        open_attempts=sum(p.status in OPEN_STATES for p in payments),
        failed_attempts=sum(p.status in UNSUCCESSFUL_STATES for p in payments),
        disputed=any(p.status == PaymentStatus.DISPUTED for p in payments),
        all_settled=bool(paid) and all(p.status == PaymentStatus.COMPLETED for p in paid),
    )


def order_target_status(
    current: str, before_dispute: str, amount: Decimal, s: PaymentSummary
) -> str:
    """The status the order should have, given its current one and its payments' summary."""
    if s.disputed:
        return S.DISPUTED
    if s.paid_total > 0 and s.refunded_total >= s.paid_total:
        return S.REFUNDED
    if current == S.CANCELLED:
        return current  # a late payment on a cancelled order is flagged for review, not applied
    if s.refunded_total > 0:
        if current in (*AFTER_SHIPPING, S.PARTIALLY_REFUNDED):
            return current  # fulfilment goes on after a partial refund
        if current == S.DISPUTED and before_dispute in AFTER_SHIPPING:
            return before_dispute
        return S.PARTIALLY_REFUNDED
    if s.paid_total >= amount:
        if current == S.DISPUTED:
            return before_dispute or S.PAID
        if current in (S.PAID, *AFTER_SHIPPING):
            return S.COMPLETED if s.all_settled else current
        return S.COMPLETED if s.all_settled else S.PAID
    if s.open_attempts:
        return S.PAYMENT_PENDING
    if s.failed_attempts:
        return S.PAYMENT_FAILED
    return current


def order_payment_summary(order: Order) -> PaymentSummary:
    payments = list(PaymentTransaction.objects.filter(order=order))
    refunds = list(Refund.objects.filter(payment__order=order))
    return summarize(payments, refunds)


def order_sync(order: Order, *, actor: Actor, details: dict | None = None) -> str:
    """Move the locked ``order`` to the status its payments call for; return the status."""
    summary = order_payment_summary(order)
    target = order_target_status(order.status, order.status_before_dispute, order.amount, summary)
    if target == order.status:
        return target
    common = {"actor": actor, "order_id": order.id, "entity": "order", "details": details}
    if order.status == S.DISPUTED and target == order.status_before_dispute:
        return apply_transition(order, "close_dispute", **common)
    if order.status == S.CREATED and target not in (S.PAYMENT_PENDING, S.PAID, S.CANCELLED):
        apply_transition(order, "start_payment", **common)
    return transition_to(order, target, **common)
