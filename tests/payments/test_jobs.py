"""The sweepers: stale payment instructions expire; lost webhook enqueues are found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from payments.models import PaymentTransaction, WebhookEvent
from payments.providers.base import Outcome, ProviderError, ProviderResult, ProviderUnavailableError
from payments.providers.dummy import DummyProvider
from payments.services import payment_create, payment_start
from payments.tasks import expire_stale_payments, sweep_webhook_events
from payments.webhooks import webhook_sources
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
