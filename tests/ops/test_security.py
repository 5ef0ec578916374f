"""Security audit entries: bad webhook signatures, denied payment actions, failed staff
logins; read-only and filterable in admin."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory, override_settings

from common.errors import ValidationFailed
from ops.models import SecurityEvent
from ops.security import security_event_record
from payments.webhooks.inbox import webhook_receive, webhook_sources

pytestmark = pytest.mark.django_db
SOURCES = ["tests.ops.fake_webhooks.FakeSource"]


@pytest.fixture
def fake_source():
    with override_settings(WEBHOOK_SOURCES=SOURCES):
        webhook_sources.cache_clear()
        yield
    webhook_sources.cache_clear()


def test_bad_webhook_signature_is_recorded(fake_source):
    body = json.dumps({"id": "evt_1", "type": "x"}).encode()
    with pytest.raises(ValidationFailed):
        webhook_receive(body, {"X-Test-Signature": "forged"})
    with pytest.raises(ValidationFailed):
        webhook_receive(body, {"Other": "1"})
    # one source, one minute: one row, counted twice (it keeps the first one's details)
    (event,) = SecurityEvent.objects.all()
    assert event.kind == "bad_webhook_signature" and event.count == 2
    assert event.details["provider"] == "fake"
    assert event.details["code"] == "invalid_signature"
    _event, created = webhook_receive(body, {"X-Test-Signature": "good"})
    assert created and SecurityEvent.objects.get().count == 2  # a good one is no event


@override_settings(ROOT_URLCONF="tests.ops.urls")
def test_permission_denial_on_a_payment_action_is_recorded(client, buyer):
    client.force_login(buyer)
    order_id = uuid.uuid4()
    response = client.post(
        f"/api/orders/{order_id}/payment/refund", HTTP_X_REQUEST_ID="req-denied-0001"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    event = SecurityEvent.objects.get()
    assert event.kind == "permission_denied"
    assert event.user == buyer and event.username == "buyer"
    assert event.path == f"/api/orders/{order_id}/payment/refund"
    assert event.method == "POST" and event.request_id == "req-denied-0001"


def test_failed_staff_login_is_recorded_without_the_password(client, staff):
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "staff", "password": "wrong-guess-123"}
    )
    assert response.status_code == 200  # the form again
    event = SecurityEvent.objects.get()
    assert event.kind == "staff_login_failed" and event.username == "staff"
    assert event.user == staff and event.ip_address == "127.0.0.1"
    assert "wrong-guess-123" not in json.dumps(event.details)


def test_failed_login_of_a_buyer_outside_admin_is_not_a_staff_event(buyer):
    request = RequestFactory().post("/api/auth/token")
    assert authenticate(request=request, username="buyer", password="nope") is None
    assert not SecurityEvent.objects.exists()


def test_admin_lists_and_filters_security_events_read_only(client, staff, buyer):
    from ops.security import security_event_record

    security_event_record(kind="permission_denied", user=buyer)
    security_event_record(kind="staff_login_failed", username="mallory")
    client.force_login(staff)
    listing = client.get("/admin/ops/securityevent/?kind__exact=staff_login_failed")
    assert listing.status_code == 200
    assert b"mallory" in listing.content and b"buyer" not in listing.content.split(b"<tbody>")[-1]
    assert client.get("/admin/ops/securityevent/add/").status_code == 403
    event = SecurityEvent.objects.first()
    assert client.post(f"/admin/ops/securityevent/{event.pk}/delete/").status_code == 403


def test_a_flood_of_unsigned_webhooks_is_one_counted_row(client):
    """300 unsigned requests made 300 rows: now one per source, kind and minute."""
    for _ in range(40):
        r = client.post("/api/orders/payment/webhook", data="{}", content_type="application/json")
        assert r.status_code == 400
    (event,) = SecurityEvent.objects.filter(kind="bad_webhook_signature")
    assert event.count == 40 and event.source == "127.0.0.1" and event.last_seen_at
    other = client.post(
        "/api/orders/payment/webhook",
        data="{}",
        content_type="application/json",
        REMOTE_ADDR="198.51.100.4",
    )
    assert other.status_code == 400
    assert SecurityEvent.objects.filter(kind="bad_webhook_signature").count() == 2


def test_security_events_are_kept_for_the_retention_only(settings):
    from datetime import timedelta

    from django.utils import timezone

    from ops.security import security_events_prune

    settings.SECURITY_EVENT_RETENTION_DAYS = 30
    old = security_event_record(kind="staff_login_failed", username="a")
    SecurityEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    security_event_record(kind="staff_login_failed", username="b")
    assert security_events_prune() == 1
    assert list(SecurityEvent.objects.values_list("username", flat=True)) == ["b"]
