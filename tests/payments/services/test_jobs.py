"""The sweepers: stale payment instructions expire; lost webhook enqueues are found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from payments.models import PaymentTransaction, WebhookEvent
from payments.providers.base import Outcome, ProviderError, ProviderResult, ProviderUnavailableError
from payments.providers.dummy import DummyProvider
from payments.services.payments import payment_create, payment_start
from payments.tasks import expire_stale_payments, sweep_webhook_events
from payments.webhooks.inbox import webhook_sources
from tests.ops.fake_webhooks import FakeSource

pytestmark = pytest.mark.django_db
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def started(order, actor) -> PaymentTransaction:
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    return PaymentTransaction.objects.get(pk=payment.id)


def test_pending_payments_past_expiry_are_cancelled_with_the_provider_then_expired(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        payment = started(order, actor)
        assert expire_stale_payments.delay().get() == []
        clock.shift(timedelta(minutes=16))
        assert expire_stale_payments.delay().get() == [str(payment.id)]
        assert expire_stale_payments.delay().get() == []  # twice is harmless
    payment.refresh_from_db()
    assert payment.status == "expired"
    assert ("cancel", str(payment.id)) in DummyProvider.calls


def test_a_payment_the_provider_reports_paid_at_expiry_is_confirmed_not_expired(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        payment = started(order, actor)
        DummyProvider.script[("cancel", str(payment.id))] = ProviderError("already succeeded")
        DummyProvider.script[("fetch", str(payment.id))] = ProviderResult(
            Outcome.SUCCEEDED, raw_status="succeeded"
        )
        clock.shift(timedelta(minutes=16))
        assert expire_stale_payments.delay().get() == []
    payment.refresh_from_db()
    assert payment.status == "confirmed"


def test_expiry_waits_while_the_provider_is_unreachable(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        payment = started(order, actor)
        DummyProvider.script[("cancel", "*")] = ProviderUnavailableError("down")
        clock.shift(timedelta(minutes=16))
        assert expire_stale_payments.delay().get() == []
    payment.refresh_from_db()
    assert payment.status == "pending"


@pytest.fixture
def fake_source():
    FakeSource.processed.clear()
    with override_settings(WEBHOOK_SOURCES=["tests.ops.fake_webhooks.FakeSource"]):
        webhook_sources.cache_clear()
        yield
    webhook_sources.cache_clear()


def test_webhook_sweeper_finds_events_whose_enqueue_was_lost(fake_source):
    now = datetime.now(UTC)

    def event(event_id: str, **fields) -> WebhookEvent:
        return WebhookEvent.objects.create(
            provider="fake", event_id=event_id, event_type="x", payload={}, **fields
        )

    event("lost", received_at=now - timedelta(minutes=10))
    event("fresh", received_at=now)  # its own enqueue may still be on the way
    event("failed-due", status="failed", attempts=1, next_attempt_at=now - timedelta(seconds=1))
    event("failed-later", status="failed", attempts=1, next_attempt_at=now + timedelta(hours=1))
    event("gave-up", status="failed", attempts=10, next_attempt_at=now - timedelta(hours=1))
    event("done", status="processed", received_at=now - timedelta(hours=1))

    swept = sweep_webhook_events.delay().get()
    assert len(swept) == 2
    assert sorted(FakeSource.processed) == ["failed-due", "lost"]
    assert set(
        WebhookEvent.objects.filter(status="processed").values_list("event_id", flat=True)
    ) == {"lost", "failed-due", "done"}
    assert sweep_webhook_events.delay().get() == []


# --- pending refunds ------------------------------------------------------------------------
def paid_refund_pending(order, actor):  # type: ignore[no-untyped-def]
    from orders.audit import Actor
    from payments.services.payments import payment_apply_result
    from payments.services.refunds import payment_refund

    payment = started(order, actor)
    payment_apply_result(
        payment_id=payment.id,
        actor=Actor.for_webhook("dummy", "evt_paid"),
        result=ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded"),
    )
    return payment_refund(order_id=order.id, actor=actor, amount="10", send=False)


def test_refund_send_twice_sends_once(order, actor, monkeypatch):
    """A second caller while the first call is in flight is refused, not sent again."""
    from common.errors import Conflict
    from payments.services.refunds import refund_send

    refund = paid_refund_pending(order, actor)
    original, seen = DummyProvider.refund, []

    def refund_while_another_caller_sends(self, data):  # type: ignore[no-untyped-def]
        with pytest.raises(Conflict) as err:
            refund_send(refund_id=data.refund_id, actor=actor)
        seen.append(err.value.code)
        return original(self, data)

    monkeypatch.setattr(DummyProvider, "refund", refund_while_another_caller_sends)
    refund_send(refund_id=refund.id, actor=actor)
    assert seen == ["refund_already_sent"]
    assert DummyProvider.calls.count(("refund", str(refund.id))) == 1
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    with pytest.raises(Conflict):
        refund_send(refund_id=refund.id, actor=actor)


@override_settings(REFUND_SWEEP_AFTER=timedelta(minutes=10))
def test_sweeper_sends_a_refund_never_sent_and_reconciles_one_sent(order, actor):
    from payments.models import Refund
    from payments.tasks import sweep_pending_refunds

    with time_machine.travel(T0, tick=False) as clock:
        never_sent = paid_refund_pending(order, actor)
        # a second refund whose call reached the provider before the process died
        from payments.services.refunds import payment_refund

        in_flight = payment_refund(order_id=order.id, actor=actor, amount="5", send=False)
        Refund.objects.filter(pk=in_flight.pk).update(provider_status="sending")
        DummyProvider.script[("fetch_refund", str(never_sent.id))] = ProviderResult(
            Outcome.FAILED, raw_status="not_found", error_code="refund_not_found"
        )
        DummyProvider.script[("fetch_refund", str(in_flight.id))] = ProviderResult(
            Outcome.SUCCEEDED, reference="re_found", raw_status="succeeded"
        )
        assert sweep_pending_refunds.delay().get() == {}  # too recent: their call may run
        clock.shift(timedelta(minutes=11))
        done = sweep_pending_refunds.delay().get()
        assert done == {str(never_sent.id): "sent", str(in_flight.id): "reconciled"}
        assert sweep_pending_refunds.delay().get() == {}  # twice is harmless
    never_sent.refresh_from_db()
    in_flight.refresh_from_db()
    assert never_sent.status == "succeeded" and never_sent.provider_reference
    assert (in_flight.status, in_flight.provider_reference) == ("succeeded", "re_found")
    assert DummyProvider.calls.count(("refund", str(never_sent.id))) == 1
    assert ("refund", str(in_flight.id)) not in DummyProvider.calls
