"""Card payments end to end against a real localstripe; a live Django server receives its
signed webhooks (Celery runs eagerly, so the event is processed within that request)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests

from common.errors import Conflict
from orders.audit import Actor
from orders.models import Order, OrderPaymentEvent
from payments.models import PaymentTransaction, WebhookEvent
from payments.services.payments import payment_create, payment_start
from payments.services.refunds import payment_refund
from tests.payments.stripe.conftest import (
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    signed,
    stripe_event,
    wait_for,
)
from tests.peers.localstripe import DECLINED_CARD

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hooked(stripe_local, live_server):
    """localstripe calls our live server with events signed by our webhook secret."""
    stripe_local.register_webhook(live_server.url + WEBHOOK_PATH, WEBHOOK_SECRET)
    yield stripe_local
    # Point it nowhere useful again so that late events of this test reach no later test.
    stripe_local.register_webhook("http://127.0.0.1:9/", WEBHOOK_SECRET)
    settle_webhooks()


def settle_webhooks(quiet: float = 1.5, timeout: float = 20.0) -> None:
    """Wait (bounded) until no event of this test is still being received: localstripe sends
    each event about a second after it happens, and a request still running in the live server
    when the test's tables are flushed deadlocks the flush."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = (
            WebhookEvent.objects.count(),
            WebhookEvent.objects.filter(status="received").exists(),
        )
        if now != last:
            last, since = now, time.monotonic()
        elif not now[1] and time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)


def status_of(payment) -> str:
    return PaymentTransaction.objects.values_list("status", flat=True).get(pk=payment.id)


def start_card_payment(order, actor):
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    result = payment_start(payment_id=payment.id, actor=actor)
    payment.refresh_from_db()
    return payment, result


def test_full_flow_card_confirmed_by_webhook(hooked, order, actor):
    payment, result = start_card_payment(order, actor)
    assert payment.status == "pending" and payment.provider == "stripe"
    pi_id = payment.payment_intent_id
    assert pi_id and pi_id.startswith("pi_") and result.reference == pi_id
    # The client secret goes to the client once and is not kept.
    assert result.client_secret.startswith(pi_id + "_secret_")
    stored = json.dumps(
        PaymentTransaction.objects.filter(pk=payment.id).values().get(), default=str
    )
    assert result.client_secret not in stored
    [pi] = [p for p in hooked.payment_intents() if p["id"] == pi_id]
    assert pi["amount"] == 10000 and pi["currency"] == "usd"
    assert pi["metadata"] == {"order_id": str(order.id), "payment_id": str(payment.id)}

    confirmed = hooked.confirm_with_card(pi_id)  # what Stripe.js does in the browser
    assert confirmed["status"] == "succeeded"

    wait_for(lambda: status_of(payment) == "confirmed", what="the succeeded webhook")
    assert Order.objects.get(pk=order.id).status == "paid"
    event = WebhookEvent.objects.get(provider="stripe", event_type="payment_intent.succeeded")
    assert event.status == "processed" and event.attempts == 1
    audit = OrderPaymentEvent.objects.filter(order_id=order.id)
    confirm = audit.get(entity="payment", action="confirm")
    assert confirm.actor_type == "webhook" and confirm.reference == event.event_id
    assert audit.filter(entity="order", action="mark_paid").exists()


def test_declined_card_fails_the_payment(hooked, order, actor):
    payment, _ = start_card_payment(order, actor)
    answer = hooked.confirm_with_card(payment.payment_intent_id, DECLINED_CARD)
    assert answer["error"]["code"] == "card_declined"
    wait_for(lambda: status_of(payment) == "failed", what="the payment_failed webhook")
    payment.refresh_from_db()
    assert payment.failure_code == "card_declined"
    assert payment.provider_data["failure_kind"] == "needs_buyer"
    assert Order.objects.get(pk=order.id).status == "payment_failed"


def test_partial_refunds_then_one_too_many(stripe_local, order, actor, staff):
    payment, _ = start_card_payment(order, actor)
    stripe_local.confirm_with_card(payment.payment_intent_id)
    admin = Actor.for_admin(staff)
    # Re-read from Stripe as the webhook would (no live server needed for this test).
    from payments.webhooks.stripe import StripeWebhookSource

    StripeWebhookSource().sync_payment_intent(payment.payment_intent_id, actor=admin)
    assert status_of(payment) == "confirmed"

    first = payment_refund(order_id=order.id, actor=admin, amount="30.00", reason="damaged")
    second = payment_refund(order_id=order.id, actor=admin, amount="50.00")
    assert first.status == second.status == "succeeded"
    assert first.provider_reference != second.provider_reference
    at_stripe = stripe_local.refunds(payment.payment_intent_id)
    assert sorted(r["amount"] for r in at_stripe) == [3000, 5000]
    assert {r["metadata"]["refund_id"] for r in at_stripe} == {str(first.id), str(second.id)}

    with pytest.raises(Conflict) as raised:
        payment_refund(order_id=order.id, actor=admin, amount="20.01")
    assert raised.value.code == "refund_exceeds_paid" and raised.value.http_status == 409
    assert len(stripe_local.refunds(payment.payment_intent_id)) == 2  # nothing sent
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert payment.refunded_amount == Decimal("80.00")
    assert Order.objects.get(pk=order.id).status == "partially_refunded"


def test_succeeded_then_payment_failed_stays_confirmed(hooked, live_server, order, actor):
    """Out of order: a ``payment_failed`` arriving after ``succeeded`` changes nothing,
    because processing re-reads the PaymentIntent, which Stripe holds as succeeded."""
    payment, _ = start_card_payment(order, actor)
    pi_id = payment.payment_intent_id
    hooked.confirm_with_card(pi_id)
    wait_for(lambda: status_of(payment) == "confirmed", what="the succeeded webhook")
    stale = stripe_event(
        "payment_intent.payment_failed",
        {"id": pi_id, "object": "payment_intent", "status": "requires_payment_method"},
        "evt_late_failure",
    )
    body, header = signed(stale)
    response = requests.post(
        live_server.url + WEBHOOK_PATH,
        data=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200
    assert WebhookEvent.objects.get(event_id="evt_late_failure").status == "processed"
    assert status_of(payment) == "confirmed"
    assert Order.objects.get(pk=order.id).status == "paid"


def test_succeeded_before_processing_ends_succeeded(stripe_local, live_server, order, actor):
    """Out of order: ``succeeded`` is delivered, then a late ``processing``: Stripe's state
    (succeeded) wins. localstripe never sends ``processing``, so that event is signed here."""
    payment, _ = start_card_payment(order, actor)
    pi_id = payment.payment_intent_id
    stripe_local.confirm_with_card(pi_id)
    for event_id, event_type in (
        ("evt_ok", "payment_intent.succeeded"),
        ("evt_processing", "payment_intent.processing"),
    ):
        body, header = signed(
            stripe_event(event_type, {"id": pi_id, "object": "payment_intent"}, event_id)
        )
        response = requests.post(
            live_server.url + WEBHOOK_PATH,
            data=body,
            headers={"Stripe-Signature": header},
            timeout=30,
        )
        assert response.status_code == 200
    assert status_of(payment) == "confirmed"
    actions = list(
        OrderPaymentEvent.objects.filter(payment_id=payment.id, entity="payment").values_list(
            "action", flat=True
        )
    )
    assert actions.count("confirm") == 1 and "start_processing" not in actions


@pytest.mark.postgres
def test_fifty_concurrent_deliveries_of_one_event(stripe_local, live_server, order, actor):
    """One real localstripe event, signed and delivered 50 times at once: one inbox row,
    one state change, fifty 200s."""
    payment, _ = start_card_payment(order, actor)
    stripe_local.confirm_with_card(payment.payment_intent_id)
    [event] = wait_for(lambda: stripe_local.events("payment_intent.succeeded"))
    body, header = signed(event)
    url = live_server.url + WEBHOOK_PATH

    def deliver(_: int) -> tuple[int, dict]:
        response = requests.post(url, data=body, headers={"Stripe-Signature": header}, timeout=60)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(deliver, range(50)))
    assert [code for code, _ in answers] == [200] * 50
    assert sum(1 for _, body in answers if body["duplicate"] is False) == 1
    assert WebhookEvent.objects.filter(provider="stripe", event_id=event["id"]).count() == 1
    assert status_of(payment) == "confirmed"
    confirms = OrderPaymentEvent.objects.filter(
        payment_id=payment.id, entity="payment", action="confirm"
    )
    assert confirms.count() == 1
    assert OrderPaymentEvent.objects.filter(order_id=order.id, action="mark_paid").count() == 1
