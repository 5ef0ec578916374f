"""/metrics shows what runs the background: messages waiting per queue and taken but not
acknowledged (Redis broker), beat's last run, each scheduled job's last success."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from kombu import Connection

from ops.models import TaskCounter
from ops.receivers import _on_job_success

pytestmark = pytest.mark.django_db


def scrape(client) -> str:  # type: ignore[no-untyped-def]
    return client.get("/metrics").content.decode()


def test_queue_depth_is_read_from_the_broker(client, settings):
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("the broker is not Redis here")
    queue = f"watch-{uuid.uuid4().hex[:8]}"
    settings.OPS_WATCHED_QUEUES = [queue]
    with Connection(
        settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS
    ) as conn:
        waiting = conn.SimpleQueue(queue)
        try:
            for n in range(3):
                waiting.put({"n": n})
            text = scrape(client)
        finally:
            waiting.clear()
            waiting.close()
    assert f'orderpay_queue_messages{{queue="{queue}"}} 3.0' in text
    assert "orderpay_queue_unacked " in text


def test_beat_last_run_and_job_successes(client):
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="x",
        task="ops.check_alerts",
        interval=every,
        last_run_at=timezone.now() - timedelta(seconds=90),
    )

    class Job:
        name = "ops.check_alerts"

    class Other:
        name = "payments.process_webhook_event"

    _on_job_success(sender=Job())
    _on_job_success(sender=Other())  # not a scheduled job: no row on the webhook path
    assert list(TaskCounter.objects.values_list("task", "event", "count")) == [
        ("ops.check_alerts", "success", 1)
    ]
    text = scrape(client)
    line = next(ln for ln in text.splitlines() if ln.startswith("orderpay_beat_last_run_age"))
    assert 89 <= float(line.split()[-1]) < 200
    assert 'orderpay_job_last_success_age_seconds{task="ops.check_alerts"}' in text
