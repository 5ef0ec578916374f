"""All workers stopped: an alert fires, evaluated by beat in its own process (the alert job
is itself a worker task and stopped with them: 90 s of dead workers raised nothing)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from ops import beat as beat_module
from ops.alerts import alerts_check, check_workers_silent
from ops.models import Incident, TaskCounter
from tests.ops.test_beat_lease import beat

pytestmark = pytest.mark.django_db


def last_success(seconds_ago: int) -> None:
    row, _ = TaskCounter.objects.get_or_create(
        task="payments.sweep_webhook_events", event="success"
    )
    TaskCounter.objects.filter(pk=row.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def test_silent_workers_fire_and_a_new_success_resolves(settings):
    settings.OPS_ALERT_EMAILS = ["ops@example.com"]
    settings.ALERT_WORKERS_SILENT_SECONDS = 600
    assert check_workers_silent() == []  # nothing ever ran: nothing to compare with
    last_success(30)
    assert check_workers_silent()[0].firing is False
    last_success(900)
    alerts_check()
    incident = Incident.objects.get(key="workers_silent", resolved_at__isnull=True)
    assert "are the workers running" in incident.title
    assert any("are the workers running" in m.subject for m in mail.outbox)
    last_success(5)
    alerts_check()
    assert not Incident.objects.filter(key="workers_silent", resolved_at__isnull=True).exists()


def test_the_leading_beat_evaluates_the_alerts_itself(monkeypatch, settings):
    settings.ALERT_EVALUATE_SECONDS = 60
    calls: list[str] = []
    monkeypatch.setattr(beat_module, "alerts_check", lambda: calls.append("x"))
    monkeypatch.setattr(beat_module.DatabaseScheduler, "tick", lambda self, *a, **k: 1.0)
    cache.delete(beat_module.LEASE_KEY)
    leader, standby = beat("leader"), beat("standby")
    leader._alerts_at = standby._alerts_at = 0.0
    leader.tick()
    leader.tick()  # within ALERT_EVALUATE_SECONDS: not again
    standby.tick()  # not the leader: never
    assert calls == ["x"]
    cache.delete(beat_module.LEASE_KEY)
