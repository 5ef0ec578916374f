"""Concurrency with the real worker: one signed webhook delivered 50 times at once, 20 refunds
of 60% at once, 20 identical POSTs with one Idempotency-Key at once."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from rest_framework.authtoken.models import Token

from notifications.models import Notification
from orders.models import Order, OrderPaymentEvent
from payments.models import IdempotencyKey, PaymentTransaction, Refund, WebhookEvent
from receipts.models import PaymentReceipt
from tests.e2e.reliability.helpers import (
    all_at_once,
    card_payment_paid_at_stripe,
    confirm_from_stripe,
    succeeded_event,
)
from tests.payments.stripe.conftest import WEBHOOK_PATH, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def subjects(emails: list[str]) -> list[tuple[str, str]]:
    """(recipient, subject) of every email the worker sent."""
    found = []
    for text in emails:
        headers = text.split("\n\n", 1)[0].splitlines()
        to = next(h[4:] for h in headers if h.startswith("To: "))
        subject = next(h[9:] for h in headers if h.startswith("Subject: "))
        found.append((to, subject))
    return found


def test_one_webhook_delivered_50_times_at_once(worker, stripe_local, wide_live_server, order):
    payment = card_payment_paid_at_stripe(stripe_local, order)
    body, headers = succeeded_event(payment, "evt_reliability_fifty")

    def deliver(_: int) -> int:
        return requests.post(
            wide_live_server.url + WEBHOOK_PATH, data=body, headers=headers, timeout=60
        ).status_code

    assert all_at_once(50, deliver) == [200] * 50

    wait_for(
        lambda: (
            Notification.objects.filter(status="sent").count() == 2
            and PaymentReceipt.objects.exclude(sha256="").exists()
        ),
        timeout=60,
        what="receipt and emails from the worker",
    )
    worker.wait_idle()
    event = WebhookEvent.objects.get()  # one inbox row
    assert event.event_id == "evt_reliability_fifty"
    assert (event.status, event.attempts) == ("processed", 1)
    payment.refresh_from_db()
    assert payment.status == "confirmed"
    assert Order.objects.get(pk=order.id).status == "paid"
    audit = OrderPaymentEvent.objects.filter(order_id=order.id)
    assert audit.filter(entity="payment", action="confirm").count() == 1  # one state change
    assert audit.filter(entity="order", action="mark_paid").count() == 1
    [receipt] = PaymentReceipt.objects.all()  # one receipt
    assert receipt.payment_id == payment.id and receipt.sequence == 1
    sent = subjects(worker.emails())  # one email per recipient
    assert sorted(to for to, _ in sent) == ["buyer@example.com", "seller@example.com"]
    assert all("Payment confirmed" in subject for _, subject in sent)
    assert set(Notification.objects.values_list("attempts", flat=True)) == {1}


def test_twenty_refunds_of_60_percent_at_once(
    worker, stripe_local, wide_live_server, order, seller
):
    payment = confirm_from_stripe(card_payment_paid_at_stripe(stripe_local, order))
    assert payment.status == "confirmed"
    token = Token.objects.create(user=seller).key
    url = f"{wide_live_server.url}/api/orders/{order.id}/payment/refund"

    def refund(_: int) -> tuple[int, str]:
        r = requests.post(
            url, json={"amount": "60.00"}, headers={"Authorization": f"Token {token}"}, timeout=60
        )
        return r.status_code, r.json().get("error", {}).get("code", "")

    answers = all_at_once(20, refund)
    succeeded = [a for a in answers if a[0] in (200, 201)]
    assert len(succeeded) == 1, answers
    assert sorted(answers).count((409, "refund_exceeds_paid")) == 19, answers

    [row] = Refund.objects.all()
    payment.refresh_from_db()
    assert row.status == "succeeded" and row.amount == Decimal("60.00")
    assert payment.refunded_amount == Decimal("60.00") <= payment.amount
    assert payment.status == "partially_refunded"
    at_stripe = stripe_local.refunds(payment.payment_intent_id)
    assert [r["amount"] for r in at_stripe] == [6000]  # one refund reached Stripe
    audit = OrderPaymentEvent.objects.filter(order_id=order.id, entity="refund")
    assert audit.filter(action="request").count() == 1
    wait_for(
        lambda: PaymentReceipt.objects.filter(kind="credit_note").exclude(sha256="").exists(),
        timeout=60,
        what="the credit note",
    )
    worker.wait_idle()
    assert PaymentReceipt.objects.filter(kind="credit_note").count() == 1


def test_twenty_identical_posts_with_one_idempotency_key(
    worker, stripe_local, wide_live_server, order
):
    token = Token.objects.create(user=order.buyer).key
    url = f"{wide_live_server.url}/api/orders/{order.id}/payment-transactions"
    headers = {"Authorization": f"Token {token}", "Idempotency-Key": "reliability-key-1"}

    def create(_: int) -> tuple[int, bytes]:
        r = requests.post(url, json={"payment_method": "fiat"}, headers=headers, timeout=60)
        return r.status_code, r.content

    answers = all_at_once(20, create)
    assert len(set(answers)) == 1, {a[0] for a in answers}  # 20 identical responses
    status, content = answers[0]
    assert status == 201, content
    [payment] = PaymentTransaction.objects.all()  # one effect
    assert str(payment.id).encode() in content
    mine = [
        pi
        for pi in stripe_local.payment_intents()
        if pi["metadata"].get("payment_id") == str(payment.id)
    ]
    assert len(mine) == 1  # one PaymentIntent at Stripe
    assert IdempotencyKey.objects.count() == 1

    other = requests.post(url, json={"payment_method": "crypto"}, headers=headers, timeout=60)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert PaymentTransaction.objects.count() == 1
