"""An enqueue lost after its commit (the broker was away when ``on_commit`` sent it): the
work is stored, nothing runs it, and the beat sweepers (run by the real worker) finish it
exactly once."""

from __future__ import annotations

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from orders.models import OrderPaymentEvent
from payments.models import PaymentTransaction, WebhookEvent
from payments.tasks import process_webhook_event, sweep_webhook_events
from receipts.models import PaymentReceipt
from receipts.tasks import issue_payment_receipt, receipts_sweep
from tests.e2e.reliability.helpers import (
    card_payment_paid_at_stripe,
    confirm_from_stripe,
    succeeded_event,
)
from tests.payments.stripe.conftest import WEBHOOK_PATH, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def lose_enqueues(monkeypatch, task) -> list:  # type: ignore[no-untyped-def]
    lost: list = []
    monkeypatch.setattr(task, "delay", lambda *args, **kwargs: lost.append(args))
    return lost


def test_lost_webhook_enqueue_is_swept(worker, stripe_local, wide_live_server, order, monkeypatch):
    payment = card_payment_paid_at_stripe(stripe_local, order)
    body, headers = succeeded_event(payment, "evt_reliability_lost")
    lost = lose_enqueues(monkeypatch, process_webhook_event)
    answer = requests.post(wide_live_server.url + WEBHOOK_PATH, data=body, headers=headers)
    assert answer.status_code == 200 and len(lost) == 1
    monkeypatch.undo()
    worker.wait_idle()
    event = WebhookEvent.objects.get()
    assert event.status == "received"  # stored, acknowledged, never run
    assert PaymentTransaction.objects.get(pk=payment.id).status == "pending"

    # Not yet stale: the sweeper leaves it (a slow enqueue may still be on its way).
    sweep_webhook_events.delay()
    worker.wait_idle()
    assert WebhookEvent.objects.get().status == "received"

    WebhookEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - settings.WEBHOOK_SWEEP_AFTER - timezone.timedelta(minutes=1)
    )
    sweep_webhook_events.delay()  # what beat sends
    wait_for(
        lambda: PaymentReceipt.objects.exclude(sha256="").exists(),
        timeout=60,
        what="the swept event's effects",
    )
    sweep_webhook_events.delay()  # again: nothing left to sweep
    worker.wait_idle()
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 1)
    assert PaymentTransaction.objects.get(pk=payment.id).status == "confirmed"
    confirms = OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm")
    assert confirms.count() == 1 and PaymentReceipt.objects.count() == 1


def test_lost_receipt_enqueue_is_swept(worker, stripe_local, order, monkeypatch):
    payment = card_payment_paid_at_stripe(stripe_local, order)
    lost = lose_enqueues(monkeypatch, issue_payment_receipt)
    assert confirm_from_stripe(payment).status == "confirmed"
    assert len(lost) == 1
    monkeypatch.undo()
    worker.wait_idle()
    assert not PaymentReceipt.objects.exists()

    receipts_sweep.delay()  # what beat sends
    wait_for(
        lambda: PaymentReceipt.objects.exclude(sha256="").exists(),
        timeout=60,
        what="the swept receipt",
    )
    receipts_sweep.delay()
    worker.wait_idle()
    [receipt] = PaymentReceipt.objects.all()
    assert receipt.payment_id == payment.id and receipt.sequence == 1
