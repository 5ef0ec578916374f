"""Shared steps of the reliability scenarios (card payments against localstripe)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connections

from orders.audit import Actor
from payments.models import PaymentTransaction
from payments.services.payments import payment_create, payment_start
from payments.webhooks.stripe import StripeWebhookSource
from tests.payments.stripe.conftest import signed, stripe_event


def card_payment_paid_at_stripe(localstripe, order) -> PaymentTransaction:  # type: ignore[no-untyped-def]
    """A card payment started here (pending) whose PaymentIntent the buyer has paid at Stripe;
    no webhook has arrived yet."""
    actor = Actor.for_user(order.buyer)
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    payment = PaymentTransaction.objects.get(pk=payment.id)
    assert payment.status == "pending" and payment.payment_intent_id
    assert localstripe.confirm_with_card(payment.payment_intent_id)["status"] == "succeeded"
    return payment


def confirm_from_stripe(payment: PaymentTransaction) -> PaymentTransaction:
    """Re-read the PaymentIntent as a webhook's processing would, here in the test process."""
    StripeWebhookSource().sync_payment_intent(
        payment.payment_intent_id, actor=Actor.for_webhook("stripe", f"evt_sync_{payment.id}")
    )
    return PaymentTransaction.objects.get(pk=payment.id)


def succeeded_event(payment: PaymentTransaction, event_id: str) -> tuple[str, dict[str, str]]:
    """A ``payment_intent.succeeded`` event for the payment, signed with our secret."""
    event = stripe_event(
        "payment_intent.succeeded",
        {
            "id": payment.payment_intent_id,
            "object": "payment_intent",
            "status": "succeeded",
            "metadata": {"payment_id": str(payment.id), "order_id": str(payment.order_id)},
        },
        event_id=event_id,
    )
    body, header = signed(event)
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}


def all_at_once(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` for i in range(count) on ``count`` threads released together; each
    thread's database connection is closed when it is done."""
    barrier = threading.Barrier(count)

    def run(i: int) -> Any:
        barrier.wait(timeout=30)
        try:
            return call(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))
