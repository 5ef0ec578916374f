"""The one rule that moves an order from its payments' states.

``order_target_status`` is a pure function (tested as a table); ``order_sync`` applies it to a
locked order through the order's own transitions, each writing its audit row.

The rule, first match wins:

1. a payment is disputed                               -> ``disputed``
2. succeeded refunds cover everything paid             -> ``refunded``
3. the order was cancelled                             -> ``cancelled`` (a late payment on it is
   flagged for review by the payment services, never applied)
4. some money was refunded                             -> ``partially_refunded`` before shipping;
   after shipping the fulfilment state stays (shipped, delivered, completed)
5. paid in full                                        -> ``completed`` once every paid payment
   is settled (escrow released), else the fulfilment stage the order reached (``paid``,
   ``shipped``, ``delivered``, ``completed``)
6. an attempt is open, or part of the amount is paid   -> ``payment_pending``
7. attempts failed, expired or were cancelled only     -> ``payment_failed``
8. otherwise the order keeps its status (``created``).

The fulfilment stage comes from the order's own timestamps, so an order whose dispute closed or
whose refund failed goes back to where its fulfilment was.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from common.errors import InvalidTransition
from orders.audit import Actor, apply_transition, transition_names_to
from orders.models import RETURN_STATES, Order, OrderStatus
from payments.models import (
    PaymentTransaction,
    Refund,
)
from payments.selectors import PaymentSummary, summarize

S = OrderStatus
AFTER_SHIPPING = (S.SHIPPED, S.DELIVERED, S.COMPLETED)
#: Transitions whose target the caller chooses (``RETURN_VALUE``): they take it as argument.
RETURNING_TRANSITIONS = {
    S.DISPUTED: "close_dispute",
    S.PARTIALLY_REFUNDED: "restore_after_refund_failure",
    S.REFUNDED: "restore_after_refund_failure",
}


def order_stage(order: Order) -> str:
    """How far the order's fulfilment went, read from its timestamps (they survive disputes and
    refunds): ``cancelled``, ``completed``, ``delivered``, ``shipped``, else ``paid``."""
    if order.cancelled_at:
        return S.CANCELLED
    if order.completed_at:
        return S.COMPLETED
    if order.delivered_at:
        return S.DELIVERED
    if order.shipped_at:
        return S.SHIPPED
    return S.PAID


def order_target_status(
    current: str, amount: Decimal, s: PaymentSummary, stage: str = S.PAID
) -> str:
    """The status the order should have, given its payments' summary and fulfilment stage."""
    if s.disputed:
        return S.DISPUTED
    if s.paid_total > 0 and s.refunded_total >= s.paid_total:
        return S.REFUNDED
    if stage == S.CANCELLED:
        return S.CANCELLED
    if s.refunded_total > 0:
        if s.all_settled:  # an escrow partly refunded, the rest released to the seller
            return S.COMPLETED
        return stage if stage in AFTER_SHIPPING else S.PARTIALLY_REFUNDED
    if s.paid_total >= amount:
        return S.COMPLETED if s.all_settled else stage
    if s.open_attempts or s.paid_total > 0:
        return S.PAYMENT_PENDING
    if s.failed_attempts:
        return S.PAYMENT_FAILED
    return current


def order_payment_summary(order: Order) -> PaymentSummary:
    payments = list(PaymentTransaction.objects.filter(order=order))
    refunds = list(Refund.objects.filter(payment__order=order))
    return summarize(payments, refunds)


@functools.cache
def order_sync_plan(current: str, target: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The transitions (name, args) that lead an order from ``current`` to ``target``: the direct
    one; else the returning one (close a dispute, undo a refund) that takes the target; else
    ``start_payment`` first (from ``created``). Raises ``InvalidTransition`` if none does."""
    probe = Order()
    probe.__dict__["status"] = current
    direct = transition_names_to(probe, target)
    if direct:
        return ((direct[0], ()),)
    returning = RETURNING_TRANSITIONS.get(current)  # type: ignore[call-overload]
    if returning is not None and target in RETURN_STATES:
        return ((returning, (target,)),)
    if current == S.CREATED:
        probe.__dict__["status"] = S.PAYMENT_PENDING
        second = transition_names_to(probe, target)
        if second:
            return (("start_payment", ()), (second[0], ()))
    raise InvalidTransition(
        f"No transition leads an order from {current} to {target}.",
        details={"entity": "order", "from_state": current, "to_state": target},
    )


def order_sync(order: Order, *, actor: Actor, details: dict | None = None) -> str:
    """Move the locked ``order`` to the status its payments call for; return the status."""
    summary = order_payment_summary(order)
    target = order_target_status(order.status, order.amount, summary, order_stage(order))
    if target == order.status:
        return target
    for name, args in order_sync_plan(order.status, target):
        apply_transition(
            order,
            name,
            args=args,
            actor=actor,
            order_id=order.id,
            entity="order",
            details=details,
        )
    return str(order.status)
