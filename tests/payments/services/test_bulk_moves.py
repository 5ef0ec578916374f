"""Set-based payment moves (``payments.services.bulk``): the same end state, audit rows and
announcements as one at a time, and what is not plain left for the one-at-a-time service."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.audit import Actor
from orders.models import OrderPaymentEvent
from payments.models import PaymentTransaction
from payments.providers.base import Outcome, ProviderResult
from payments.services.bulk import Move, payments_move_many
from payments.services.payments import payment_apply_result
from tests.factories import OrderFactory, PaymentFactory

pytestmark = pytest.mark.django_db

ACTOR = Actor.for_job("test")


def pending_payments(n: int, amount: str = "25.00"):  # type: ignore[no-untyped-def]
    payments = []
    for _ in range(n):
        order = OrderFactory(amount=Decimal(amount), status="payment_pending")
        payments.append(PaymentFactory(order=order))
    return payments


def state(p: PaymentTransaction) -> tuple[str, str]:
    p = PaymentTransaction.objects.select_related("order").get(pk=p.pk)
    return p.status, p.order.status


def test_confirming_many_matches_one_at_a_time(django_capture_on_commit_callbacks):
    bulk, single = pending_payments(3), pending_payments(1)
    moves = [
        Move(p.id, "confirm", raw_status="confirmed", fields={"confirmations": 3}) for p in bulk
    ]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert payments_move_many(moves, actor=ACTOR) == []
    with django_capture_on_commit_callbacks(execute=True):  # its receipt and emails too
        payment_apply_result(
            payment_id=single[0].id,
            actor=ACTOR,
            result=ProviderResult(
                Outcome.SUCCEEDED, raw_status="confirmed", fields={"confirmations": 3}
            ),
        )
    expected = state(single[0])
    assert expected == ("confirmed", "paid")
    for p in bulk:
        assert state(p) == expected
        row = PaymentTransaction.objects.get(pk=p.pk)
        assert row.confirmations == 3 and row.provider_status == "confirmed" and row.confirmed_at

        def trail(payment):  # type: ignore[no-untyped-def]
            return sorted(
                (e.entity, e.action, e.from_state, e.to_state)
                for e in OrderPaymentEvent.objects.filter(order_id=payment.order_id)
            )

        assert trail(p) == trail(single[0])
    assert callbacks  # the invalidation and the announcement task, after the commit


def test_a_second_run_changes_nothing():
    payments = pending_payments(2)
    moves = [Move(p.id, "confirm", raw_status="confirmed") for p in payments]
    payments_move_many(moves, actor=ACTOR)
    before = OrderPaymentEvent.objects.count()
    assert payments_move_many(moves, actor=ACTOR) == []
    assert OrderPaymentEvent.objects.count() == before


def test_what_is_not_plain_is_left_for_one_at_a_time():
    plain, high, expired = pending_payments(1), pending_payments(1, "50000.00"), pending_payments(1)
    PaymentTransaction.objects.filter(pk=expired[0].pk).update(status="expired")
    moves = [Move(p.id, "confirm", raw_status="confirmed") for p in (*plain, *high, *expired)]
    left = payments_move_many(moves, actor=ACTOR)
    assert [m.payment_id for m in left] == [high[0].id, expired[0].id]
    assert state(plain[0]) == ("confirmed", "paid")
    assert state(high[0])[0] == "pending" and state(expired[0])[0] == "expired"


def test_two_moves_on_one_order_take_one_at_a_time_for_the_second():
    order = OrderFactory(amount=Decimal("50.00"), status="payment_pending")
    first = PaymentFactory(order=order, amount=Decimal("25.00"))
    second = PaymentFactory(order=order, amount=Decimal("25.00"))
    moves = [Move(p.id, "start_processing", raw_status="seen") for p in (first, second)]
    left = payments_move_many(moves, actor=ACTOR)
    assert [m.payment_id for m in left] == [second.id]
    assert state(first)[0] == "processing" and state(second)[0] == "pending"


def test_confirming_clears_what_a_failure_left_as_one_at_a_time_does():
    bulk, single = pending_payments(1), pending_payments(1)
    for p in (*bulk, *single):
        PaymentTransaction.objects.filter(pk=p.pk).update(
            status="unknown", failure_code="timeout", failure_reason="no answer"
        )
    assert (
        payments_move_many([Move(bulk[0].id, "confirm", raw_status="confirmed")], actor=ACTOR) == []
    )
    payment_apply_result(
        payment_id=single[0].id,
        actor=ACTOR,
        result=ProviderResult(Outcome.SUCCEEDED, raw_status="confirmed"),
    )
    fields = ("status", "failure_code", "failure_reason", "next_retry_at")
    moved, expected = (
        PaymentTransaction.objects.values_list(*fields).get(pk=p.pk) for p in (bulk[0], single[0])
    )
    assert moved == expected == ("confirmed", "", "", None)
