"""Prometheus metrics, read from the database at scrape time.

Every number comes from the database when /metrics is scraped, so any web process answers
with the same values and nothing is lost when a process restarts. Task retries and failures
are counted by the Celery signals into ``TaskCounter`` rows (one ``UPDATE ... + 1`` each), not
in process memory: a prefork worker's children and workers on other hosts all add to the same
row, which prometheus-client's multiprocess mode (one host, one shared directory) cannot do.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ops.health import readiness
from ops.models import Incident, TaskCounter
from payments.models import (
    ChainCursor,
    IdempotencyKey,
    PaymentStatus,
    PaymentTransaction,
    WebhookEvent,
)
from payments.providers.base import FailureKind

WEBHOOK_BACKLOG_STATES = (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED)


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then else 0.0


class DatabaseCollector:
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()

        payments = GaugeMetricFamily(
            "orderpay_payments", "Payments by method and status.", labels=["method", "status"]
        )
        rows = PaymentTransaction.objects.values_list("method", "status").annotate(n=Count("id"))
        for method, status, n in rows.order_by():
            payments.add_metric([method, status], n)
        yield payments

        due = PaymentTransaction.objects.filter(
            status=PaymentStatus.FAILED,
            provider_data__failure_kind=FailureKind.TRANSIENT,
            next_retry_at__isnull=False,
        )
        yield GaugeMetricFamily(
            "orderpay_payments_retry_scheduled",
            "Failed payments waiting for an automatic retry.",
            value=due.count(),
        )
        yield GaugeMetricFamily(
            "orderpay_payments_unknown",
            "Payments whose outcome is unknown until reconciled with the provider.",
            value=PaymentTransaction.objects.filter(status=PaymentStatus.UNKNOWN).count(),
        )

        backlog = WebhookEvent.objects.filter(status__in=WEBHOOK_BACKLOG_STATES).aggregate(
            n=Count("id"), oldest=Min("received_at")
        )
        yield GaugeMetricFamily(
            "orderpay_webhook_backlog",
            "Stored webhook events not processed yet (received or failed).",
            value=backlog["n"],
        )
        yield GaugeMetricFamily(
            "orderpay_webhook_backlog_oldest_age_seconds",
            "Age of the oldest unprocessed webhook event.",
            value=_age(now, backlog["oldest"]),
        )
        events = GaugeMetricFamily(
            "orderpay_webhook_events", "Webhook inbox rows by status.", labels=["status"]
        )
        for status, n in (
            WebhookEvent.objects.values_list("status").annotate(n=Count("id")).order_by()
        ):
            events.add_metric([status], n)
        yield events

        block = GaugeMetricFamily(
            "orderpay_chain_cursor_block", "Last block read per chain.", labels=["chain_id"]
        )
        age = GaugeMetricFamily(
            "orderpay_chain_cursor_age_seconds",
            "Seconds since the chain monitor last stored its cursor.",
            labels=["chain_id"],
        )
        lag = GaugeMetricFamily(
            "orderpay_chain_cursor_lag_blocks",
            "Blocks between the chain head the monitor saw and its cursor.",
            labels=["chain_id"],
        )
        for cursor in ChainCursor.objects.all():
            label = [str(cursor.chain_id)]
            block.add_metric(label, cursor.block_number)
            age.add_metric(label, _age(now, cursor.updated_at))
            head = cursor.head_number
            if head is not None:
                lag.add_metric(label, max(0, head - cursor.block_number))
        yield block
        yield age
        yield lag

        keys = IdempotencyKey.objects.aggregate(n=Count("id"), oldest=Min("created_at"))
        yield GaugeMetricFamily(
            "orderpay_idempotency_keys", "Stored idempotency keys.", value=keys["n"]
        )
        yield GaugeMetricFamily(
            "orderpay_idempotency_keys_oldest_age_seconds",
            "Age of the oldest stored idempotency key.",
            value=_age(now, keys["oldest"]),
        )

        incidents = GaugeMetricFamily(
            "orderpay_open_incidents", "Open alert incidents by key.", labels=["key"]
        )
        for key in Incident.objects.filter(resolved_at__isnull=True).values_list("key", flat=True):
            incidents.add_metric([key], 1)
        yield incidents

        up = GaugeMetricFamily(
            "orderpay_dependency_up",
            "1 when the readiness check of a dependency passes (essential: 1 for the checks "
            "that make /readyz fail; a chain node only degrades it).",
            labels=["check", "essential"],
        )
        for name, check in readiness()[1].items():
            up.add_metric([name, str(check["essential"]).lower()], check["status"] == "ok")
        yield up

        retries = CounterMetricFamily(
            "orderpay_task_retries", "Celery task retries.", labels=["task"]
        )
        failures = CounterMetricFamily(
            "orderpay_task_failures", "Celery task failures.", labels=["task"]
        )
        for counter in TaskCounter.objects.filter(Q(event="retry") | Q(event="failure")):
            target = retries if counter.event == "retry" else failures
            target.add_metric([counter.task], counter.count)
        yield retries
        yield failures


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())  # type: ignore[arg-type]
    # other apps' figures, named in settings (ops imports none of those apps)
    for path in settings.METRICS_COLLECTORS:
        registry.register(import_string(path)())
    return generate_latest(registry)
