"""Events and answers localstripe cannot produce (disputes, a refund failing after success,
processing/canceled/requires_action PaymentIntents, fraud declines, three-decimal currencies),
with the Stripe boundary replaced by an in-memory gateway. Everything on our side is real:
the signed webhook request, the inbox, the task, the services and the audit trail."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command

from common.errors import ValidationFailed
from orders.models import Order, OrderPaymentEvent
from payments.models import PaymentTransaction, Refund, WebhookEvent
from payments.providers.base import FailureKind, Outcome, PaymentData, ProviderUnavailableError
from payments.providers.stripe import provider as provider_module
from payments.providers.stripe.provider import payment_intent_result, stripe_amount
from payments.services.payments import payment_create, payment_start
from payments.services.refunds import payment_refund
from payments.webhooks import stripe as webhook_module
from tests.factories import OrderFactory
from tests.payments.stripe.conftest import WEBHOOK_PATH, signed, stripe_event

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)


class FakeGateway:
    """Stripe's objects in memory, answering like StripeGateway (plain dicts)."""

    def __init__(self) -> None:
        self.intents: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.disputes: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.fail_next: Exception | None = None

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    def create_payment_intent(self, params: dict, idempotency_key: str) -> dict:
        self._maybe_fail()
        pi_id = f"pi_fake{next(_ids)}"
        self.intents[pi_id] = {
            "id": pi_id,
            "status": "requires_payment_method",
            "client_secret": f"{pi_id}_secret_x",
            "amount": params["amount"],
            "currency": params["currency"],
            "metadata": dict(params["metadata"]),
            "created": next(_ids),
        }
        return dict(self.intents[pi_id])

    def retrieve_payment_intent(self, pi_id: str) -> dict:
        self._maybe_fail()
        return dict(self.intents[pi_id])

    def cancel_payment_intent(self, pi_id: str) -> dict:
        self.intents[pi_id]["status"] = "canceled"
        return dict(self.intents[pi_id])

    def find_payment_intents(self, key: str, value: str) -> list[dict]:
        return [dict(p) for p in self.intents.values() if p["metadata"].get(key) == value]

    def create_refund(self, params: dict, idempotency_key: str) -> dict:
        re_id = f"re_fake{next(_ids)}"
        self.refunds[re_id] = {"id": re_id, "status": "succeeded", **params}
        return dict(self.refunds[re_id])

    def retrieve_refund(self, re_id: str) -> dict:
        return dict(self.refunds[re_id])

    def list_refunds(self, pi_id: str) -> list[dict]:
        return [dict(r) for r in self.refunds.values() if r["payment_intent"] == pi_id]

    def retrieve_dispute(self, dp_id: str) -> dict:
        return dict(self.disputes[dp_id])

    def retrieve_charge(self, ch_id: str) -> dict:
        return dict(self.charges[ch_id])


@pytest.fixture
def fake(stripe_on, monkeypatch):
    gateway = FakeGateway()
    monkeypatch.setattr(provider_module, "StripeGateway", lambda: gateway)
    monkeypatch.setattr(webhook_module, "StripeGateway", lambda: gateway)
    return gateway


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def send(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> WebhookEvent:
        event = stripe_event(event_type, obj, event_id or f"evt_{next(_ids)}")
        body, header = signed(event)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                WEBHOOK_PATH, data=body, content_type="application/json",
                HTTP_STRIPE_SIGNATURE=header,
            )  # fmt: skip
        assert response.status_code == 200, response.content
        return WebhookEvent.objects.get(provider="stripe", event_id=event["id"])

    return send


@pytest.fixture
def started(fake, order, actor, django_capture_on_commit_callbacks):
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    payment.refresh_from_db()
    return payment


@pytest.fixture
def paid(started, fake, deliver):
    fake.intents[started.payment_intent_id]["status"] = "succeeded"
    deliver("payment_intent.succeeded", {"id": started.payment_intent_id})
    started.refresh_from_db()
    assert started.status == "confirmed"
    return started


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


# --- PaymentIntent states -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stripe_status", "expected"),
    [
        ("requires_action", "pending"),
        ("requires_confirmation", "pending"),
        ("processing", "processing"),
        ("canceled", "cancelled"),
        ("succeeded", "confirmed"),
    ],
)
def test_payment_intent_events_apply_stripes_state(started, fake, deliver, stripe_status, expected):
    fake.intents[started.payment_intent_id]["status"] = stripe_status
    event_type = {"canceled": "payment_intent.canceled"}.get(
        stripe_status, f"payment_intent.{stripe_status}"
    )
    event = deliver(event_type, {"id": started.payment_intent_id})
    assert event.status == "processed"
    assert reload(started).status == expected


def test_processing_then_succeeded_in_order(started, fake, deliver):
    fake.intents[started.payment_intent_id]["status"] = "processing"
    deliver("payment_intent.processing", {"id": started.payment_intent_id})
    assert reload(started).status == "processing"
    fake.intents[started.payment_intent_id]["status"] = "succeeded"
    deliver("payment_intent.succeeded", {"id": started.payment_intent_id})
    assert reload(started).status == "confirmed"
    assert Order.objects.get(pk=started.order_id).status == "paid"


def test_fraudulent_decline_is_final(started, fake, deliver):
    fake.intents[started.payment_intent_id].update(
        last_payment_error={"code": "card_declined", "decline_code": "fraudulent"}
    )
    deliver("payment_intent.payment_failed", {"id": started.payment_intent_id})
    payment = reload(started)
    assert payment.status == "failed" and payment.failure_code == "fraudulent"
    assert payment.provider_data["failure_kind"] == FailureKind.FINAL


@pytest.mark.parametrize("code", ["card_declined", "insufficient_funds", "authentication_required"])
def test_buyer_fixable_declines(code):
    data = PaymentData(
        payment_id=__import__("uuid").uuid4(), order_id=__import__("uuid").uuid4(),
        method="fiat", amount=Decimal("1.00"), currency="USD", idempotency_key="k",
    )  # fmt: skip
    pi = {
        "id": "pi_x",
        "status": "requires_payment_method",
        "amount": 100,
        "currency": "usd",
        "metadata": {},
        "last_payment_error": {"code": code},
    }
    result = payment_intent_result(pi, data)
    assert result.outcome == Outcome.FAILED and result.failure_kind == FailureKind.NEEDS_BUYER


def test_a_second_payment_intent_for_a_payment_is_flagged_not_applied(started, fake, deliver):
    fake.intents["pi_other"] = {
        **fake.intents[started.payment_intent_id], "id": "pi_other", "status": "succeeded",
    }  # fmt: skip
    deliver("payment_intent.succeeded", {"id": "pi_other"})
    payment = reload(started)
    assert payment.status == "pending" and payment.payment_intent_id != "pi_other"
    assert payment.review_status == "flagged"
    assert payment.review_reasons[0]["reason"] == "duplicate_payment_intent"


def test_event_for_an_unknown_payment_intent_is_acknowledged(fake, deliver):
    fake.intents["pi_elsewhere"] = {"id": "pi_elsewhere", "status": "succeeded", "metadata": {}}
    assert deliver("payment_intent.succeeded", {"id": "pi_elsewhere"}).status == "processed"


# --- amounts --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [("100.00", "USD", 10000), ("0.01", "EUR", 1), ("1500", "JPY", 1500), ("5.120", "KWD", 5120)],
)
def test_minor_units(amount, currency, units):
    assert stripe_amount(Decimal(amount), currency) == units


def test_three_decimal_amount_not_ending_in_zero_is_rejected(fake, actor, buyer, seller):
    order = OrderFactory(buyer=buyer, seller=seller, amount=Decimal("5.125"), currency="KWD")
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    with pytest.raises(ValidationFailed) as raised:
        payment_start(payment_id=payment.id, actor=actor)
    assert raised.value.code == "currency_precision_unsupported"
    assert reload(payment).status == "failed" and not fake.intents


def test_jpy_payment_intent_in_yen(fake, actor, buyer, seller):
    order = OrderFactory(buyer=buyer, seller=seller, amount=Decimal("1500"), currency="JPY")
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    [pi] = fake.intents.values()
    assert (pi["amount"], pi["currency"]) == (1500, "jpy")


def test_amount_mismatch_is_flagged(started, fake, deliver):
    fake.intents[started.payment_intent_id].update(status="succeeded", amount=1)
    deliver("payment_intent.succeeded", {"id": started.payment_intent_id})
    payment = reload(started)
    assert payment.review_status == "flagged"
    assert payment.review_reasons[0]["reason"] == "amount_mismatch"
    assert payment.status == "processing" and payment.confirmed_at is None  # not confirmed
    assert Order.objects.get(pk=payment.order_id).status != "paid"


@pytest.mark.parametrize("changes", [{"currency": "eur"}, {"amount": 10**9}])
def test_succeeded_payment_intent_with_other_money_is_never_confirmed(
    started, fake, deliver, changes
):
    fake.intents[started.payment_intent_id].update(status="succeeded", **changes)
    deliver("payment_intent.succeeded", {"id": started.payment_intent_id})
    deliver("payment_intent.succeeded", {"id": started.payment_intent_id})  # again
    payment = reload(started)
    assert payment.status == "processing" and payment.review_status == "flagged"
    assert not OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").exists()


# --- refunds --------------------------------------------------------------------------------
def test_refund_that_fails_after_success_returns_the_money_and_flags(paid, fake, deliver, staff):
    from orders.audit import Actor

    refund = payment_refund(order_id=paid.order_id, actor=Actor.for_admin(staff), amount="40.00")
    assert refund.status == "succeeded" and reload(paid).status == "partially_refunded"
    fake.refunds[refund.provider_reference].update(status="failed", failure_reason="lost")
    deliver("refund.failed", {"id": refund.provider_reference})
    refund, payment = reload(refund), reload(paid)
    assert refund.status == "failed" and payment.refunded_amount == Decimal("0")
    assert payment.status == "confirmed" and payment.review_status == "flagged"
    assert payment.refundable_amount == Decimal("100.00")
    assert Order.objects.get(pk=paid.order_id).status == "paid"


def test_charge_refunded_rereads_refunds_and_flags_one_made_elsewhere(paid, fake, deliver):
    fake.refunds["re_dashboard"] = {
        "id": "re_dashboard", "status": "succeeded", "amount": 500,
        "payment_intent": paid.payment_intent_id, "metadata": {},
    }  # fmt: skip
    deliver("charge.refunded", {"id": "ch_1", "payment_intent": paid.payment_intent_id})
    payment = reload(paid)
    assert payment.review_status == "flagged"
    assert payment.review_reasons[0]["reason"] == "refund_outside_orderpay"


def test_refund_updated_pending_to_succeeded(paid, fake, deliver, staff, monkeypatch):
    from orders.audit import Actor

    original = fake.create_refund

    def pending_refund(params, idempotency_key):
        answer = original(params, idempotency_key)
        fake.refunds[answer["id"]]["status"] = "pending"
        return {**answer, "status": "pending"}

    monkeypatch.setattr(fake, "create_refund", pending_refund)
    refund = payment_refund(order_id=paid.order_id, actor=Actor.for_admin(staff))
    assert refund.status == "pending"
    fake.refunds[refund.provider_reference]["status"] = "succeeded"
    deliver("refund.updated", {"id": refund.provider_reference})
    assert reload(refund).status == "succeeded" and reload(paid).status == "refunded"


# --- disputes (localstripe has none) ----------------------------------------------------------
def _dispute(fake, payment, status: str) -> str:
    fake.charges["ch_d"] = {"id": "ch_d", "payment_intent": payment.payment_intent_id}
    fake.disputes["dp_1"] = {
        "id": "dp_1", "charge": "ch_d", "status": status, "reason": "fraudulent", "amount": 10000,
    }  # fmt: skip
    return "dp_1"


def test_dispute_opened_then_won(paid, fake, deliver):
    dp = _dispute(fake, paid, "needs_response")
    deliver("charge.dispute.created", {"id": dp})
    payment = reload(paid)
    assert payment.status == "disputed" and payment.review_status == "flagged"
    assert Order.objects.get(pk=paid.order_id).status == "disputed"
    fake.disputes[dp]["status"] = "won"
    deliver("charge.dispute.closed", {"id": dp})
    assert reload(paid).status == "confirmed"
    assert Order.objects.get(pk=paid.order_id).status == "paid"


def test_dispute_lost_refunds_the_buyer(paid, fake, deliver):
    dp = _dispute(fake, paid, "needs_response")
    deliver("charge.dispute.created", {"id": dp})
    fake.disputes[dp]["status"] = "lost"
    deliver("charge.dispute.closed", {"id": dp})
    payment = reload(paid)
    assert payment.status == "refunded" and payment.refunded_amount == Decimal("100.00")
    assert Order.objects.get(pk=paid.order_id).status == "refunded"


def test_dispute_closed_arriving_first(paid, fake, deliver):
    dp = _dispute(fake, paid, "lost")
    deliver("charge.dispute.closed", {"id": dp})
    deliver("charge.dispute.created", {"id": dp})  # late; Stripe says lost: nothing more
    assert reload(paid).status == "refunded"
    audit = OrderPaymentEvent.objects.filter(payment_id=paid.id, action="open_dispute")
    assert audit.count() == 1


# --- processing failures, retry and replay --------------------------------------------------
def test_processing_failure_is_kept_and_replayed(started, fake, deliver, capsys):
    fake.intents[started.payment_intent_id]["status"] = "succeeded"
    fake.fail_next = ProviderUnavailableError("Stripe could not be reached (test).")
    event = deliver("payment_intent.succeeded", {"id": started.payment_intent_id})
    assert event.status == "failed" and event.attempts == 1
    assert "ProviderUnavailableError" in event.last_error and event.next_attempt_at
    assert reload(started).status == "pending"

    call_command("replay_webhook_events", "--failed")
    assert f"event {event.id}: processed" in capsys.readouterr().out
    event.refresh_from_db()
    assert event.status == "processed" and event.attempts == 2 and event.last_error == ""
    assert reload(started).status == "confirmed"


def test_due_sweep_retries_after_backoff(started, fake, deliver):
    from django.utils import timezone

    from payments.tasks import sweep_webhook_events

    fake.intents[started.payment_intent_id]["status"] = "succeeded"
    fake.fail_next = ProviderUnavailableError("down")
    event = deliver("payment_intent.succeeded", {"id": started.payment_intent_id})
    assert sweep_webhook_events() == []  # backoff not over yet
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    assert sweep_webhook_events() == [event.id]
    assert reload(started).status == "confirmed"


def test_cancel_payment_cancels_the_payment_intent(started, fake, actor):
    from payments.services.payments import payment_cancel

    payment_cancel(payment_id=started.id, actor=actor, reason="changed my mind")
    assert reload(started).status == "cancelled"
    assert fake.intents[started.payment_intent_id]["status"] == "canceled"


def test_client_secret_fetched_again_not_stored(started, fake):
    from payments.providers.registry import get_provider
    from payments.services.core import payment_data

    secret = get_provider("stripe").client_secret(payment_data(started))
    assert secret == fake.intents[started.payment_intent_id]["client_secret"]
    row = PaymentTransaction.objects.filter(pk=started.pk).values()[0]
    assert secret not in repr(row)
    assert not Refund.objects.exists()


# --- one re-read settles every event about the PaymentIntent stored before it ---------------
def test_one_re_read_settles_the_intents_events_stored_before_it(
    started, fake, deliver, settings, monkeypatch
):
    from payments.webhooks.inbox import webhook_process

    settings.WEBHOOK_DISPATCH = "inbox"  # stored, not processed, until webhook_process runs
    pi = started.payment_intent_id
    fake.intents[pi]["status"] = "succeeded"
    before = [
        deliver("payment_intent.processing", {"id": pi}),
        deliver("payment_intent.succeeded", {"id": pi}),
        deliver("payment_intent.succeeded", {"id": pi}),
    ]
    WebhookEvent.objects.filter(pk=before[2].pk).update(status="failed", last_error="timeout")
    refund_event = deliver("charge.refunded", {"id": "ch_1", "payment_intent": pi})
    reads = []
    original = fake.retrieve_payment_intent
    monkeypatch.setattr(fake, "retrieve_payment_intent", lambda i: reads.append(i) or original(i))

    webhook_process(before[1].pk)
    assert reads == [pi]  # one re-read for the three
    assert reload(started).status == "confirmed"
    rows = {e.pk: reload(e) for e in [*before, refund_event]}
    assert rows[before[1].pk].covered_by_id is None and rows[before[1].pk].attempts == 1
    for covered in (before[0], before[2]):
        row = rows[covered.pk]
        assert (row.status, row.covered_by_id, row.attempts) == ("processed", before[1].pk, 0)
        assert row.last_error == ""
    assert rows[refund_event.pk].status == "received"  # another kind of read: not covered

    after = deliver("payment_intent.canceled", {"id": pi})  # stored after the re-read
    webhook_process(before[0].pk)  # a covered event's own task: nothing to do
    assert reads == [pi] and reload(after).status == "received"
    webhook_process(after.pk)
    assert reads == [pi, pi] and reload(after).status == "processed"
