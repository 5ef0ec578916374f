"""/metrics: values read from the database at scrape time change with payments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.signals import task_failure, task_retry
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from orders.audit import Actor
from payments.models import ChainCursor, WebhookEvent
from payments.providers.base import Outcome, ProviderResult
from payments.services.payments import payment_apply_result, payment_create, payment_start
from receipts.models import PaymentReceipt
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_payment_gauges_follow_payments(client, order, actor):
    before = scrape(client)
    assert value(before, "orderpay_payments", method="fiat", status="pending") == 0
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    after_start = scrape(client)
    assert value(after_start, "orderpay_payments", method="fiat", status="pending") == 1

    payment_apply_result(
        payment_id=payment.id,
        actor=Actor.for_webhook("dummy", "evt_1"),
        result=ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded"),
    )
    confirmed = scrape(client)
    assert value(confirmed, "orderpay_payments", method="fiat", status="pending") == 0
    assert value(confirmed, "orderpay_payments", method="fiat", status="confirmed") == 1
    # Confirmed without a receipt: the receipt backlog counts it until a receipt exists.
    assert value(confirmed, "orderpay_receipt_backlog") == 1
    PaymentReceipt.objects.create(
        payment=payment,
        order_id=order.id,
        number="R-2030-000001",
        year=2030,
        sequence=1,
        amount=payment.amount,
        currency=payment.currency,
    )
    assert value(scrape(client), "orderpay_receipt_backlog") == 0


def test_webhook_backlog_and_age(client):
    now = timezone.now()
    WebhookEvent.objects.create(
        provider="dummy", event_id="e1", event_type="x", payload={}, received_at=now
    )
    WebhookEvent.objects.create(
        provider="dummy",
        event_id="e2",
        event_type="x",
        payload={},
        received_at=now - timedelta(minutes=10),
        status=WebhookEvent.Status.FAILED,
    )
    WebhookEvent.objects.create(
        provider="dummy", event_id="e3", event_type="x", payload={}, status="processed"
    )
    samples = scrape(client)
    assert value(samples, "orderpay_webhook_backlog") == 2
    assert value(samples, "orderpay_webhook_backlog_oldest_age_seconds") >= 600
    assert value(samples, "orderpay_webhook_events", status="processed") == 1


def test_chain_cursor_metrics(client):
    cursor = ChainCursor.objects.create(chain_id=31337, block_number=120, head_number=190)
    ChainCursor.objects.filter(pk=cursor.pk).update(
        updated_at=timezone.now() - timedelta(minutes=3)
    )
    samples = scrape(client)
    assert value(samples, "orderpay_chain_cursor_block", chain_id="31337") == 120
    assert value(samples, "orderpay_chain_cursor_age_seconds", chain_id="31337") >= 180
    assert value(samples, "orderpay_chain_cursor_lag_blocks", chain_id="31337") == 70


def test_task_retries_and_failures_are_counted_in_the_database(client):
    from payments.tasks import retry_failed_payments

    for _ in range(2):
        task_retry.send(sender=retry_failed_payments, request=None, reason="boom")
    task_failure.send(sender=retry_failed_payments, task_id="t1", exception=RuntimeError("x"))
    samples = scrape(client)
    name = "payments.retry_failed_payments"
    assert value(samples, "orderpay_task_retries_total", task=name) == 2
    assert value(samples, "orderpay_task_failures_total", task=name) == 1


def test_a_failing_eager_task_counts_a_failure(client, monkeypatch):
    from payments import tasks
    from payments.tasks import retry_failed_payments

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database went away")

    monkeypatch.setattr(tasks, "retry_pass", broken)
    # apply(throw=False) runs the task through Celery's tracer as a worker does (eager mode
    # with propagation re-raises before the failure signal, so it would not count).
    result = retry_failed_payments.apply(throw=False)
    assert result.failed()
    samples = scrape(client)
    assert (
        value(samples, "orderpay_task_failures_total", task="payments.retry_failed_payments") == 1
    )


def test_idempotency_keys_gauge(client, buyer):
    from payments.models import IdempotencyKey

    IdempotencyKey.objects.create(user=buyer, key="k1", method="POST", path="/x", request_hash="h")
    assert value(scrape(client), "orderpay_idempotency_keys") == 1


def test_metrics_token_when_set(client):
    with override_settings(METRICS_TOKEN="a-long-metrics-token"):
        assert client.get("/metrics").status_code == 401
        ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-metrics-token")
        assert ok.status_code == 200


def test_scrape_query_count_does_not_grow_with_payments(client, django_assert_max_num_queries):
    for _ in range(5):
        o = OrderFactory()
        payment_create(order_id=o.id, method="fiat", actor=Actor.system())
    with django_assert_max_num_queries(14):
        client.get("/metrics")


def test_receipt_backlog_counts_what_the_receipt_sweeper_sweeps(client, order, actor):
    """One query for both: a paid payment with no confirmation time is in neither."""
    from receipts.services import receipts_missing

    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    payment_apply_result(
        payment_id=payment.id,
        actor=Actor.for_webhook("dummy", "evt_2"),
        result=ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded"),
    )
    assert value(scrape(client), "orderpay_receipt_backlog") == len(receipts_missing()[0]) == 1
    type(payment).objects.filter(pk=payment.pk).update(confirmed_at=None)
    assert value(scrape(client), "orderpay_receipt_backlog") == len(receipts_missing()[0]) == 0
