"""Prometheus metrics, read from the database at scrape time.

Every number comes from the database when /metrics is scraped, so any web process answers
with the same values and nothing is lost when a process restarts. Task retries and failures
are counted by the Celery signals into ``TaskCounter`` rows (one ``UPDATE ... + 1`` each), not
in process memory: a prefork worker's children and workers on other hosts all add to the same
row, which prometheus-client's multiprocess mode (one host, one shared directory) cannot do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django_celery_beat.models import PeriodicTask
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

logger = logging.getLogger(__name__)
WEBHOOK_BACKLOG_STATES = (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED)


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then else 0.0


def broker_metrics() -> Iterator[Metric]:
    """Messages waiting per queue and messages taken but not acknowledged, read from the Redis
    broker at scrape time (nothing for another transport). A broker that cannot be read is
    left out here; readiness and its gauge say it."""
    if not str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://")):
        return
    from kombu import Connection

    waiting = GaugeMetricFamily(
        "orderpay_queue_messages", "Task messages waiting in a queue.", labels=["queue"]
    )
    options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=settings.READINESS_TIMEOUT,
            transport_options=options,
        ) as conn:
            channel = conn.default_channel
            for queue in settings.OPS_WATCHED_QUEUES:
                waiting.add_metric([queue], channel._size(queue))
            unacked = channel.client.hlen(channel.unacked_key)
    except Exception as exc:
        logger.warning("broker metrics unavailable: %s", type(exc).__name__)
        return
    yield waiting
    yield GaugeMetricFamily(
        "orderpay_queue_unacked",
        "Task messages a worker took and has not acknowledged (a dead worker's come back "
        "after CELERY_VISIBILITY_TIMEOUT).",
        value=unacked,
    )


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

        last = GaugeMetricFamily(
            "orderpay_job_last_success_age_seconds",
            "Seconds since each scheduled job last finished without an error.",
            labels=["task"],
        )
        for task, at in TaskCounter.objects.filter(event="success").values_list(
            "task", "updated_at"
        ):
            last.add_metric([task], _age(now, at))
        yield last
        beat = PeriodicTask.objects.filter(enabled=True).aggregate(at=Max("last_run_at"))["at"]
        if beat is not None:
            yield GaugeMetricFamily(
                "orderpay_beat_last_run_age_seconds",
                "Seconds since beat last sent a scheduled job (beat is down when this grows).",
                value=_age(now, beat),
            )
        yield from broker_metrics()


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())  # type: ignore[arg-type]
    # other apps' figures, named in settings (ops imports none of those apps)
    for path in settings.METRICS_COLLECTORS:
        registry.register(import_string(path)())
    return generate_latest(registry)
