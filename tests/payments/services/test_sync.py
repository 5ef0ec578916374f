"""The one rule that moves an order from its payments, as a table: first the pure function,
then the same table applied through ``order_sync`` to real rows and real transitions."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from django.utils import timezone

from common.errors import InvalidTransition
from orders.audit import Actor
from orders.models import Order, OrderPaymentEvent
from payments.models import PaymentTransaction, Refund
from payments.services.sync import (
    PaymentSummary,
    order_stage,
    order_sync,
    order_sync_plan,
    order_target_status,
    summarize,
)
from tests.factories import OrderFactory, PaymentFactory

D = Decimal
AMOUNT = D("100.00")


def summary(**kw):
    for key in ("paid_total", "refunded_total", "pending_refund_total"):
        if key in kw:
            kw[key] = D(kw[key])
    return PaymentSummary(**kw)


# (case, current, stage, summary, expected)
TABLE = [
    # before any money
    ("nothing yet", "created", "paid", {}, "created"),
    ("first attempt open", "created", "paid", {"open_attempts": 1}, "payment_pending"),
    ("attempt open", "payment_pending", "paid", {"open_attempts": 1}, "payment_pending"),
    ("attempt failed", "payment_pending", "paid", {"failed_attempts": 1}, "payment_failed"),
    ("failed only, never started", "created", "paid", {"failed_attempts": 2}, "payment_failed"),
    (
        "retry open after failure",
        "payment_failed",
        "paid",
        {"open_attempts": 1, "failed_attempts": 1},
        "payment_pending",
    ),
    # partial payments
    ("partly paid", "payment_pending", "paid", {"paid_total": "40"}, "payment_pending"),
    (
        "partly paid, next attempt failed",
        "payment_failed",
        "paid",
        {"paid_total": "40", "failed_attempts": 1},
        "payment_pending",
    ),
    (
        "partly paid, rest open",
        "payment_pending",
        "paid",
        {"paid_total": "40", "open_attempts": 1},
        "payment_pending",
    ),
    # paid in full
    ("paid", "payment_pending", "paid", {"paid_total": "100"}, "paid"),
    ("paid in two parts", "payment_pending", "paid", {"paid_total": "100"}, "paid"),
    ("paid straight from created", "created", "paid", {"paid_total": "100"}, "paid"),
    (
        "late success after failure",
        "payment_failed",
        "paid",
        {"paid_total": "100", "failed_attempts": 1},
        "paid",
    ),
    ("overpaid", "paid", "paid", {"paid_total": "150"}, "paid"),
    ("pending refund does not count", "paid", "paid", {"paid_total": "100",
     "pending_refund_total": "30"}, "paid"),
    ("shipped stays", "shipped", "shipped", {"paid_total": "100"}, "shipped"),
    ("delivered stays", "delivered", "delivered", {"paid_total": "100"}, "delivered"),
    ("completed stays", "completed", "completed", {"paid_total": "100"}, "completed"),
    # escrow settlement
    ("escrow released", "paid", "paid", {"paid_total": "100", "all_settled": True}, "completed"),
    (
        "escrow released after delivery",
        "delivered",
        "delivered",
        {"paid_total": "100", "all_settled": True},
        "completed",
    ),
    # refunds
    ("partial refund", "paid", "paid", {"paid_total": "100", "refunded_total": "30"},
     "partially_refunded"),
    ("second partial refund", "partially_refunded", "paid",
     {"paid_total": "100", "refunded_total": "60"}, "partially_refunded"),
    ("shipped + partial refund", "shipped", "shipped",
     {"paid_total": "100", "refunded_total": "30"}, "shipped"),
    ("delivered + partial refund", "delivered", "delivered",
     {"paid_total": "100", "refunded_total": "30"}, "delivered"),
    ("completed + partial refund", "completed", "completed",
     {"paid_total": "100", "refunded_total": "30"}, "completed"),
    ("full refund", "paid", "paid", {"paid_total": "100", "refunded_total": "100"}, "refunded"),
    ("rest refunded", "partially_refunded", "paid",
     {"paid_total": "100", "refunded_total": "100"}, "refunded"),
    ("shipped + full refund", "shipped", "shipped",
     {"paid_total": "100", "refunded_total": "100"}, "refunded"),
    ("completed + full refund", "completed", "completed",
     {"paid_total": "100", "refunded_total": "100"}, "refunded"),
    ("part paid, part refunded", "payment_pending", "paid",
     {"paid_total": "40", "refunded_total": "10"}, "partially_refunded"),
    ("part paid, all refunded", "payment_pending", "paid",
     {"paid_total": "40", "refunded_total": "40"}, "refunded"),
    # refund failed after success: back to what the payments say
    ("refund failed, nothing left refunded", "refunded", "paid", {"paid_total": "100"}, "paid"),
    ("partial refund failed", "partially_refunded", "paid", {"paid_total": "100"}, "paid"),
    ("refund failed after shipping", "refunded", "shipped", {"paid_total": "100"}, "shipped"),
    ("refund failed after completion", "refunded", "completed", {"paid_total": "100"},
     "completed"),
    ("one of two refunds failed", "refunded", "paid",
     {"paid_total": "100", "refunded_total": "30"}, "partially_refunded"),
    ("refund failed on part payment", "refunded", "paid", {"paid_total": "40"},
     "payment_pending"),
    # disputes
    ("dispute opened", "paid", "paid", {"paid_total": "100", "disputed": True}, "disputed"),
    ("dispute after shipping", "shipped", "shipped", {"paid_total": "100", "disputed": True},
     "disputed"),
    ("dispute after completion", "completed", "completed",
     {"paid_total": "100", "disputed": True}, "disputed"),
    ("dispute after partial refund", "partially_refunded", "paid",
     {"paid_total": "100", "refunded_total": "30", "disputed": True}, "disputed"),
    ("dispute on a part payment", "payment_pending", "paid",
     {"paid_total": "40", "disputed": True}, "disputed"),
    ("dispute on a cancelled order's late payment", "cancelled", "cancelled",
     {"paid_total": "100", "disputed": True}, "disputed"),
    ("dispute stays open", "disputed", "paid", {"paid_total": "100", "disputed": True},
     "disputed"),
    ("dispute won", "disputed", "paid", {"paid_total": "100"}, "paid"),
    ("dispute won after shipping", "disputed", "shipped", {"paid_total": "100"}, "shipped"),
    ("dispute won after delivery", "disputed", "delivered", {"paid_total": "100"}, "delivered"),
    ("dispute won after partial refund", "disputed", "paid",
     {"paid_total": "100", "refunded_total": "30"}, "partially_refunded"),
    ("dispute won on a part payment", "disputed", "paid", {"paid_total": "40"},
     "payment_pending"),
    ("dispute lost", "disputed", "paid", {"paid_total": "100", "refunded_total": "100"},
     "refunded"),
    ("dispute lost after shipping", "disputed", "shipped",
     {"paid_total": "100", "refunded_total": "100"}, "refunded"),
    ("escrow released by the arbiter", "disputed", "paid",
     {"paid_total": "100", "all_settled": True}, "completed"),
    ("dispute won on a cancelled order", "disputed", "cancelled", {"paid_total": "100"},
     "cancelled"),
    # cancelled orders
    ("cancelled", "cancelled", "cancelled", {}, "cancelled"),
    ("cancelled, attempt still open", "cancelled", "cancelled", {"open_attempts": 1},
     "cancelled"),
    ("cancelled + late payment", "cancelled", "cancelled", {"paid_total": "100"}, "cancelled"),
    ("cancelled + late part payment", "cancelled", "cancelled", {"paid_total": "40"},
     "cancelled"),
    ("cancelled + late payment partly refunded", "cancelled", "cancelled",
     {"paid_total": "100", "refunded_total": "50"}, "cancelled"),
    ("cancelled + late payment refunded", "cancelled", "cancelled",
     {"paid_total": "100", "refunded_total": "100"}, "refunded"),
    ("refund of a late payment failed", "refunded", "cancelled", {"paid_total": "100"},
     "cancelled"),
]  # fmt: skip
IDS = [case[0] for case in TABLE]


@pytest.mark.parametrize(("case", "current", "stage", "kw", "expected"), TABLE, ids=IDS)
def test_target_status_table(case, current, stage, kw, expected):
    assert order_target_status(current, AMOUNT, summary(**kw), stage) == expected


@pytest.mark.parametrize(("case", "current", "stage", "kw", "expected"), TABLE, ids=IDS)
def test_every_target_is_reachable_from_its_current_state(case, current, stage, kw, expected):
    if expected != current:
        assert order_sync_plan(current, expected)


def test_unreachable_target_is_an_invalid_transition():
    with pytest.raises(InvalidTransition):
        order_sync_plan("refunded", "disputed")
    with pytest.raises(InvalidTransition):
        order_sync_plan("completed", "created")


# --- the same table through the database and the real transitions ---------------------------
STAGE_TIMESTAMPS = {
    "paid": [],
    "shipped": ["shipped_at"],
    "delivered": ["shipped_at", "delivered_at"],
    "completed": ["shipped_at", "delivered_at", "completed_at"],
    "cancelled": ["cancelled_at"],
}


def build(current: str, stage: str, kw: dict) -> Order:
    """Rows that summarise to ``kw``: one paid payment (confirmed, completed or disputed), open
    and failed attempts of 1.00, and refunds on the paid payment."""
    order = OrderFactory(amount=AMOUNT)
    now = timezone.now()
    Order.objects.filter(pk=order.pk).update(
        status=current,
        status_before_dispute=stage if current == "disputed" else "",
        **dict.fromkeys(STAGE_TIMESTAMPS[stage], now),
    )
    paid = D(kw.get("paid_total", "0"))
    if paid:
        status = "disputed" if kw.get("disputed") else "confirmed"
        status = "completed" if kw.get("all_settled") else status
        payment = PaymentFactory(order=order, amount=paid)
        PaymentTransaction.objects.filter(pk=payment.pk).update(status=status)
        for key, refund_status in (
            ("refunded_total", "succeeded"),
            ("pending_refund_total", "pending"),
        ):
            if D(kw.get(key, "0")):
                Refund.objects.create(payment=payment, amount=D(kw[key]), currency="USD")
                Refund.objects.filter(payment=payment, status="pending").update(
                    status=refund_status
                )
    for key, status in (("open_attempts", "pending"), ("failed_attempts", "failed")):
        for _ in range(kw.get(key, 0)):
            p = PaymentFactory(order=order, amount=D("1.00"))
            PaymentTransaction.objects.filter(pk=p.pk).update(status=status)
    return Order.objects.get(pk=order.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "current", "stage", "kw", "expected"), TABLE, ids=IDS)
def test_order_sync_applies_the_table_through_transitions(case, current, stage, kw, expected):
    order = build(current, stage, kw)
    assert summarize(order.payments.all(), Refund.objects.filter(payment__order=order)) == (
        summary(**kw)
    )
    assert order_stage(order) == stage
    actor = Actor.for_job("sync-test", reference="tick-1")
    assert order_sync(order, actor=actor) == expected
    reloaded = Order.objects.get(pk=order.pk)
    assert reloaded.status == expected
    events = list(OrderPaymentEvent.objects.filter(order=order, entity="order"))
    if expected == current:
        assert events == []
    else:
        assert events[0].from_state == current and events[-1].to_state == expected
        assert all(e.to_state == n.from_state for e, n in itertools.pairwise(events))
        assert {(e.actor_type, e.actor_label, e.reference) for e in events} == {
            ("job", "sync-test", "tick-1")
        }
    if current == "disputed" and expected != "disputed":
        assert reloaded.status_before_dispute == ""
    # Running it again changes nothing.
    assert order_sync(reloaded, actor=actor) == expected
    assert OrderPaymentEvent.objects.filter(order=order).count() == len(events)


def test_paid_total_is_exact_beyond_the_default_decimal_context():
    """31 significant digits: Python's default 28-digit context would round the sum."""
    from payments.models import PaymentTransaction
    from payments.selectors import order_paid_total

    amount = Decimal("1000000000000.000000000000000001")
    paid = [PaymentTransaction(amount=amount, status="confirmed") for _ in range(2)]
    pending = PaymentTransaction(amount=amount, status="pending")
    assert order_paid_total([*paid, pending]) == Decimal("2000000000000.000000000000000002")
