"""Stripe unreachable or slow: 502 provider_unavailable, the payment says its outcome is
unknown, a retry never makes a second PaymentIntent, and reconciliation settles it.

localstripe ignores idempotency keys (a retried create would make a second PaymentIntent
there), so these tests show that our own lookup before a retry is what prevents duplicates.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from common.errors import ProviderUnavailable
from config.exceptions import api_exception_handler
from orders.audit import Actor
from orders.models import Order
from payments.models import PaymentTransaction, Refund
from payments.services.payments import payment_create, payment_start
from payments.services.reconcile import reconcile_stripe
from payments.services.refunds import payment_refund
from payments.webhooks.stripe import StripeWebhookSource
from tests.peers.faulty_http import FaultProxy
from tests.peers.localstripe import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def mine(localstripe, payment) -> list[dict]:
    return [
        pi
        for pi in localstripe.payment_intents()
        if pi["metadata"].get("payment_id") == str(payment.id)
    ]


def status_of(payment) -> str:
    return PaymentTransaction.objects.values_list("status", flat=True).get(pk=payment.id)


def test_unreachable_gives_502_then_retry_creates_one(stripe_on, localstripe, order, actor):
    localstripe.reset()
    stripe_on.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    with pytest.raises(ProviderUnavailable) as raised:
        payment_start(payment_id=payment.id, actor=actor)
    response = api_exception_handler(raised.value, {})
    assert response.status_code == 502
    assert response.data["error"]["code"] == "provider_unavailable"
    assert status_of(payment) == "unknown"
    # Reconciling while Stripe is still away changes nothing and says so.
    [difference] = reconcile_stripe(grace_seconds=0)
    assert difference.action == "unreachable" and status_of(payment) == "unknown"

    stripe_on.STRIPE_API_BASE = localstripe.url  # Stripe is back
    [difference] = reconcile_stripe(grace_seconds=0)
    assert (difference.local, difference.stripe, difference.after) == (
        "unknown", "not_found", "pending",
    )  # fmt: skip
    result = payment_start(payment_id=payment.id, actor=actor)
    assert status_of(payment) == "pending" and result.client_secret
    assert len(mine(localstripe, payment)) == 1


def test_slow_create_then_retry_finds_the_first_payment_intent(
    stripe_on, localstripe, order, actor
):
    localstripe.reset()
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    stripe_on.STRIPE_TIMEOUT = 1
    with FaultProxy(localstripe.url, delay=5) as proxy:
        stripe_on.STRIPE_API_BASE = proxy.url
        with pytest.raises(ProviderUnavailable):
            payment_start(payment_id=payment.id, actor=actor)
    assert status_of(payment) == "unknown"
    assert len(mine(localstripe, payment)) == 1  # it did reach Stripe

    stripe_on.STRIPE_API_BASE = localstripe.url
    stripe_on.STRIPE_TIMEOUT = 5
    result = payment_start(payment_id=payment.id, actor=actor)  # the client retries
    [pi] = mine(localstripe, payment)  # still one: found, not created again
    payment.refresh_from_db()
    assert payment.status == "pending" and payment.payment_intent_id == pi["id"]
    assert result.client_secret.startswith(pi["id"])


def test_slow_create_settled_by_reconcile_command(stripe_on, localstripe, order, actor, capsys):
    localstripe.reset()
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    stripe_on.STRIPE_TIMEOUT = 1
    with FaultProxy(localstripe.url, delay=5) as proxy:
        stripe_on.STRIPE_API_BASE = proxy.url
        with pytest.raises(ProviderUnavailable):
            payment_start(payment_id=payment.id, actor=actor)
    stripe_on.STRIPE_API_BASE = localstripe.url
    stripe_on.STRIPE_TIMEOUT = 5
    [pi] = mine(localstripe, payment)
    localstripe.confirm_with_card(pi["id"])  # the buyer paid meanwhile (no webhook here)

    call_command("reconcile_stripe", "--grace-seconds", "0")
    out = capsys.readouterr().out
    assert f"payment {payment.id}" in out and "local unknown, stripe succeeded" in out
    assert "applied -> confirmed" in out and "1 difference(s)" in out
    payment.refresh_from_db()
    assert payment.status == "confirmed" and payment.payment_intent_id == pi["id"]
    assert Order.objects.get(pk=order.id).status == "paid"
    call_command("reconcile_stripe", "--grace-seconds", "0")
    assert "0 difference(s)" in capsys.readouterr().out  # settled: nothing differs any more
    assert len(mine(localstripe, payment)) == 1


def test_slow_refund_is_unknown_then_reconciled_without_refunding_twice(
    stripe_on, localstripe, order, actor, staff
):
    localstripe.reset()
    stripe_on.STRIPE_API_BASE = localstripe.url
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    payment.refresh_from_db()
    localstripe.confirm_with_card(payment.payment_intent_id)
    admin = Actor.for_admin(staff)
    StripeWebhookSource().sync_payment_intent(payment.payment_intent_id, actor=admin)
    assert status_of(payment) == "confirmed"

    stripe_on.STRIPE_TIMEOUT = 1
    with FaultProxy(localstripe.url, delay=5) as proxy:
        stripe_on.STRIPE_API_BASE = proxy.url
        with pytest.raises(ProviderUnavailable):
            payment_refund(order_id=order.id, actor=admin, amount="25.00")
    stripe_on.STRIPE_API_BASE = localstripe.url
    stripe_on.STRIPE_TIMEOUT = 5
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "unknown"
    assert len(localstripe.refunds(payment.payment_intent_id)) == 1

    differences = reconcile_stripe(grace_seconds=0)
    assert [(d.kind, d.local, d.after) for d in differences] == [("refund", "unknown", "succeeded")]
    refund.refresh_from_db()
    [at_stripe] = localstripe.refunds(payment.payment_intent_id)
    assert refund.status == "succeeded" and refund.provider_reference == at_stripe["id"]
    assert status_of(payment) == "partially_refunded"
    assert reconcile_stripe(grace_seconds=0) == []


def test_reconcile_leaves_a_refund_stripe_never_answered_to_the_refund_sweeper(
    stripe_local, order, actor, staff
):
    """A pending refund that Stripe does not know (in flight, or its sender died) is neither
    failed nor made refundable again by reconciliation; the sweeper then sends it, once."""
    from datetime import timedelta

    from django.utils import timezone

    from payments.services.expiry import refunds_sweep_pending

    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    payment.refresh_from_db()
    stripe_local.confirm_with_card(payment.payment_intent_id)
    StripeWebhookSource().sync_payment_intent(payment.payment_intent_id, actor=actor)
    assert status_of(payment) == "confirmed"

    admin = Actor.for_admin(staff)
    refund = payment_refund(order_id=order.id, actor=admin, amount="40.00", send=False)
    assert [d for d in reconcile_stripe(grace_seconds=0) if d.kind == "refund"] == []
    refund.refresh_from_db()
    assert refund.status == "pending"
    assert PaymentTransaction.objects.get(pk=payment.pk).refunded_amount == 40

    refunds_sweep_pending(now=timezone.now() + timedelta(hours=1))
    refund.refresh_from_db()
    assert refund.status == "succeeded" and refund.provider_reference
    assert len(stripe_local.refunds(payment.payment_intent_id)) == 1
