"""Stripe slow beyond our client timeout, and Stripe answering 500 (before or after it did
the work), through a fault proxy in front of localstripe: never a second PaymentIntent or
refund, and reconciliation ends with no difference."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.errors import Conflict, ProviderUnavailable
from orders.audit import Actor
from payments.models import PaymentTransaction, Refund
from payments.services.payments import payment_create, payment_start
from payments.services.reconcile import reconcile_stripe
from payments.services.refunds import payment_refund
from tests.peers.faulty_http import FaultProxy

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def intents_for(localstripe, payment) -> list[dict]:  # type: ignore[no-untyped-def]
    return [
        pi
        for pi in localstripe.payment_intents()
        if pi["metadata"].get("payment_id") == str(payment.id)
    ]


def status_of(payment) -> str:  # type: ignore[no-untyped-def]
    return PaymentTransaction.objects.values_list("status", flat=True).get(pk=payment.id)


def test_500s_and_timeouts_never_charge_or_refund_twice(stripe_local, settings, order, staff):
    buyer, admin = Actor.for_user(order.buyer), Actor.for_admin(staff)
    with FaultProxy(stripe_local.url) as proxy:
        settings.STRIPE_API_BASE = proxy.url
        payment = payment_create(order_id=order.id, method="fiat", actor=buyer)

        # 500 before Stripe saw it: unknown here, nothing at Stripe
        proxy.fail_next(1, 500, forward=False)
        with pytest.raises(ProviderUnavailable):
            payment_start(payment_id=payment.id, actor=buyer)
        assert status_of(payment) == "unknown" and intents_for(stripe_local, payment) == []

        # 500 after Stripe made the PaymentIntent: the answer is lost
        proxy.fail_next(1, 500, forward=True, method="POST")
        with pytest.raises(ProviderUnavailable):
            payment_start(payment_id=payment.id, actor=buyer)
        assert status_of(payment) == "unknown" and len(intents_for(stripe_local, payment)) == 1

        # the client retries: the PaymentIntent is found, not made again
        result = payment_start(payment_id=payment.id, actor=buyer)
        [pi] = intents_for(stripe_local, payment)
        assert result.reference == pi["id"] and status_of(payment) == "pending"

        stripe_local.confirm_with_card(pi["id"])  # the buyer pays; no webhook here
        [difference] = reconcile_stripe(grace_seconds=0)
        assert (difference.local, difference.after) == ("pending", "confirmed")

        # a refund whose answer is lost (500 after Stripe refunded)
        proxy.fail_next(1, 500, forward=True, method="POST")
        with pytest.raises(ProviderUnavailable):
            payment_refund(order_id=order.id, actor=admin, amount="60.00")
        assert Refund.objects.get().status == "unknown"
        # staff try again: the unknown refund still holds its room, nothing is sent
        with pytest.raises(Conflict) as raised:
            payment_refund(order_id=order.id, actor=admin, amount="60.00")
        assert raised.value.code == "refund_exceeds_paid"

        # a refund slower than our timeout (Stripe does it; we give up first)
        settings.STRIPE_TIMEOUT = 1
        proxy.delay = 3
        with pytest.raises(ProviderUnavailable):
            payment_refund(order_id=order.id, actor=admin, amount="30.00")
        proxy.delay = 0
        settings.STRIPE_TIMEOUT = 5

        at_stripe = stripe_local.refunds(pi["id"])
        assert sorted(r["amount"] for r in at_stripe) == [3000, 6000]
        assert sorted(Refund.objects.values_list("status", flat=True)) == ["unknown", "unknown"]

        differences = reconcile_stripe(grace_seconds=0)
        assert sorted((d.kind, d.local, d.after) for d in differences) == [
            ("refund", "unknown", "succeeded"),
            ("refund", "unknown", "succeeded"),
        ]
        assert reconcile_stripe(grace_seconds=0) == []  # nothing differs any more

    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == Decimal("90.00")
    assert len(intents_for(stripe_local, payment)) == 1
    assert len(stripe_local.refunds(pi["id"])) == 2
    assert sorted(Refund.objects.values_list("provider_reference", flat=True)) == sorted(
        r["id"] for r in stripe_local.refunds(pi["id"])
    )
