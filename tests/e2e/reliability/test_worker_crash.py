"""A worker SIGKILLed (its whole process group) in the middle of a task: the message was
not acknowledged (acks_late), the open transaction dies with the connection, and after the
visibility timeout the restarted worker gets the task again: the effect happens once.

The task is held at a known point by a pause point of tests/peers/celery_worker_hooks.py
(loaded into the test worker only): after the webhook's payment change, inside the event's
transaction; after the receipt's number was taken, under the sequence row lock."""

from __future__ import annotations

import hashlib

import pytest
import requests

from notifications.models import Notification
from orders.models import OrderPaymentEvent
from payments.models import PaymentTransaction, WebhookEvent
from receipts.models import PaymentReceipt, ReceiptSequence
from tests.e2e.reliability.helpers import (
    card_payment_paid_at_stripe,
    confirm_from_stripe,
    succeeded_event,
)
from tests.payments.stripe.conftest import WEBHOOK_PATH, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def status_of(payment) -> str:  # type: ignore[no-untyped-def]
    return PaymentTransaction.objects.values_list("status", flat=True).get(pk=payment.id)


def test_worker_killed_while_processing_a_webhook(worker, stripe_local, wide_live_server, order):
    payment = card_payment_paid_at_stripe(stripe_local, order)
    body, headers = succeeded_event(payment, "evt_reliability_sigkill")
    worker.block("webhook_processed")
    answer = requests.post(wide_live_server.url + WEBHOOK_PATH, data=body, headers=headers)
    assert answer.status_code == 200
    worker.wait_reached("webhook_processed")
    # The worker has moved the payment inside its transaction; nothing is committed yet.
    assert status_of(payment) == "pending"
    assert WebhookEvent.objects.get().status == "received"
    first = worker.process.pid
    worker.kill()  # SIGKILL to the main process and its pool children
    worker.unblock("webhook_processed")
    assert worker.queued()[1] == 1  # delivered, never acknowledged
    worker.start()
    assert worker.process.pid != first

    wait_for(
        lambda: (
            PaymentReceipt.objects.exclude(sha256="").exists()
            and Notification.objects.filter(status="sent").count() == 2
        ),
        timeout=60,
        what="the redelivered webhook's effects",
    )
    worker.wait_idle()
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 1)  # the killed attempt left nothing
    assert status_of(payment) == "confirmed"
    audit = OrderPaymentEvent.objects.filter(order_id=order.id)
    assert audit.filter(entity="payment", action="confirm").count() == 1
    assert audit.filter(entity="order", action="mark_paid").count() == 1
    assert PaymentReceipt.objects.count() == 1
    assert len(worker.emails()) == 2  # buyer and seller, once each


def test_worker_killed_while_issuing_a_receipt(worker, stripe_local, order):
    payment = card_payment_paid_at_stripe(stripe_local, order)
    worker.block("receipt_numbered")
    assert confirm_from_stripe(payment).status == "confirmed"  # enqueues the receipt task
    worker.wait_reached("receipt_numbered")
    assert not PaymentReceipt.objects.exists()  # number taken, nothing committed
    # The confirmation's two emails go out on the worker's other pool process meanwhile; the
    # kill is for the receipt task (an email caught between its claim and its send would wait
    # SEND_LEASE for the sweeper, a different scenario).
    wait_for(
        lambda: Notification.objects.filter(status="sent").count() == 2,
        timeout=30,
        what="the confirmation emails",
    )
    worker.kill()
    worker.unblock("receipt_numbered")
    worker.start()

    receipt = wait_for(
        lambda: PaymentReceipt.objects.exclude(sha256="").first(),
        timeout=60,
        what="the redelivered receipt task",
    )
    worker.wait_idle()
    assert PaymentReceipt.objects.count() == 1
    # The killed attempt's number was rolled back with it: no gap.
    assert receipt.sequence == 1 and receipt.number.endswith("-000001")
    assert ReceiptSequence.objects.get(kind="receipt").last_number == 1
    issued = OrderPaymentEvent.objects.filter(order_id=order.id, entity="receipt", action="issue")
    assert issued.count() == 1
    with receipt.pdf.open("rb") as pdf:
        assert hashlib.sha256(pdf.read()).hexdigest() == receipt.sha256
    assert Notification.objects.filter(status="sent").count() == 2
