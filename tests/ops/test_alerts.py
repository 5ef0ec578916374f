"""Alerts: one email per incident; a new one only after the incident resolved."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from ops.alerts import alerts_check
from ops.models import Incident
from orders.audit import Actor, record_event
from payments.models import ChainCursor, WebhookEvent
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db
OPS = {"OPS_ALERT_EMAILS": ["ops@example.com"]}


def backlog(n: int) -> None:
    for i in range(n):
        WebhookEvent.objects.create(provider="dummy", event_id=f"b{i}", event_type="x", payload={})


@override_settings(**OPS, ALERT_WEBHOOK_BACKLOG=3)
def test_webhook_backlog_alerts_once_per_incident():
    backlog(3)
    assert alerts_check()["opened"] == ["webhook_backlog"]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "Webhook backlog" in mail.outbox[0].subject
    backlog_more = WebhookEvent.objects.create(
        provider="dummy", event_id="more", event_type="x", payload={}
    )
    for _ in range(3):
        assert alerts_check()["opened"] == []
    assert len(mail.outbox) == 1  # still the same incident
    assert Incident.objects.filter(key="webhook_backlog", resolved_at__isnull=True).count() == 1

    WebhookEvent.objects.update(status=WebhookEvent.Status.PROCESSED)
    assert alerts_check()["resolved"] == ["webhook_backlog"]
    assert "RESOLVED" in mail.outbox[-1].subject
    assert alerts_check() == {"opened": [], "resolved": []}

    WebhookEvent.objects.filter(pk=backlog_more.pk).delete()
    WebhookEvent.objects.update(status=WebhookEvent.Status.RECEIVED)
    assert alerts_check()["opened"] == ["webhook_backlog"]  # a new incident alerts again
    assert Incident.objects.filter(key="webhook_backlog").count() == 2
    assert sum("ALERT" in m.subject for m in mail.outbox) == 2


@override_settings(**OPS, ALERT_PAYMENT_FAILURE_RATE=0.5, ALERT_PAYMENT_FAILURE_MIN_COUNT=4)
def test_payment_failure_rate_over_the_window():
    order = OrderFactory()
    job = Actor.for_job("t")

    def event(action: str, ago: timedelta = timedelta(0)) -> None:
        with time_machine.travel(timezone.now() - ago):  # audit rows are append-only
            record_event(order_id=order.id, entity="payment", action=action, actor=job)

    for _ in range(3):
        event("fail")
    assert alerts_check()["opened"] == []  # too few to judge
    event("confirm")
    assert alerts_check()["opened"] == ["payment_failure_rate"]  # 3 of 4 failed
    for _ in range(4):
        event("confirm")
    assert alerts_check()["resolved"] == ["payment_failure_rate"]  # 3 of 8
    # Failures outside the window do not count.
    for _ in range(10):
        event("fail", ago=timedelta(hours=2))
    assert alerts_check()["opened"] == []


@override_settings(**OPS, ALERT_CHAIN_LAG_SECONDS=120)
def test_chain_cursor_lag_alerts_per_chain():
    fresh = ChainCursor.objects.create(chain_id=1, block_number=10)
    stale = ChainCursor.objects.create(chain_id=31337, block_number=10)
    ChainCursor.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert alerts_check()["opened"] == ["chain_lag:31337"]
    assert "Chain 31337" in mail.outbox[0].subject
    assert alerts_check()["opened"] == []
    stale.save()  # the monitor stored its cursor again
    assert alerts_check()["resolved"] == ["chain_lag:31337"]
    assert fresh.pk


@override_settings(**OPS, ALERT_CHAIN_LAG_SECONDS=3600, ALERT_CHAIN_LAG_BLOCKS=50)
def test_chain_lag_in_blocks_alerts_on_a_fresh_cursor():
    """The monitor runs (its cursor is fresh) but falls behind the head it saw."""
    cursor = ChainCursor.objects.create(chain_id=31337, block_number=100, head_number=140)
    assert alerts_check()["opened"] == []
    cursor.head_number = 151
    cursor.save()
    assert alerts_check()["opened"] == ["chain_lag:31337"]
    assert "51 blocks behind the head" in mail.outbox[0].subject + mail.outbox[0].body


@override_settings(OPS_ALERT_EMAILS=[], ALERT_WEBHOOK_BACKLOG=1)
def test_without_recipients_the_incident_is_still_recorded():
    backlog(1)
    assert alerts_check()["opened"] == ["webhook_backlog"]
    assert mail.outbox == []


@override_settings(**OPS, ALERT_WEBHOOK_BACKLOG=1)
def test_a_failed_email_is_sent_on_the_next_pass_once(monkeypatch):
    from ops import alerts

    backlog(1)
    real = alerts.send_mail
    monkeypatch.setattr(alerts, "send_mail", lambda *a, **k: (_ for _ in ()).throw(OSError("smtp")))
    alerts_check()
    assert mail.outbox == [] and not Incident.objects.get().notified
    monkeypatch.setattr(alerts, "send_mail", real)
    alerts_check()
    alerts_check()
    assert len(mail.outbox) == 1 and Incident.objects.get().notified


def test_check_alerts_task_is_registered():
    from config.celery_app import app

    app.loader.import_default_modules()
    assert "ops.check_alerts" in app.tasks
