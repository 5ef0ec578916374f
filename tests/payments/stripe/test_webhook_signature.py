"""Signature checks on POST /api/orders/payment/webhook: every rejection is a 400 in the one
error format and stores nothing (signatures computed locally with Stripe's scheme)."""

from __future__ import annotations

import json
import time

import pytest

from payments.models import WebhookEvent
from tests.payments.stripe.conftest import WEBHOOK_PATH, signed, stripe_event

pytestmark = pytest.mark.django_db

EVENT = stripe_event(
    "payment_intent.succeeded", {"id": "pi_unknown", "object": "payment_intent"}, "evt_sig_1"
)


def post(client, body: str, header: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": header} if header is not None else {}
    return client.post(WEBHOOK_PATH, data=body, content_type="application/json", **headers)


def assert_rejected(response, code: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and "details" in error
    assert WebhookEvent.objects.count() == 0


def test_valid_signature_is_stored_once(
    client, stripe_on, monkeypatch, django_capture_on_commit_callbacks
):
    from payments.webhooks import stripe as webhook

    seen = []
    monkeypatch.setattr(
        webhook.StripeWebhookSource, "process", lambda self, event: seen.append(event.event_id)
    )
    body, header = signed(EVENT)
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, body, header)
        again = post(client, body, header)
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    assert again.status_code == 200 and again.json() == {"received": True, "duplicate": True}
    assert WebhookEvent.objects.filter(provider="stripe", event_id="evt_sig_1").count() == 1
    assert seen == ["evt_sig_1"]


def test_trailing_slash_is_the_same_endpoint(client, stripe_on, monkeypatch):
    from payments.webhooks import stripe as webhook

    monkeypatch.setattr(webhook.StripeWebhookSource, "process", lambda self, event: None)
    body, header = signed(EVENT)
    response = client.post(
        WEBHOOK_PATH + "/", data=body, content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )  # fmt: skip
    assert response.status_code == 200


def test_bad_signature(client, stripe_on):
    body, header = signed(EVENT)
    tampered = header[:-4] + ("0000" if not header.endswith("0000") else "1111")
    assert_rejected(post(client, body, tampered), "invalid_signature")


def test_wrong_secret(client, stripe_on):
    body, header = signed(EVENT, secret="whsec_someone_else")
    assert_rejected(post(client, body, header), "invalid_signature")


def test_missing_header(client, stripe_on):
    body, _ = signed(EVENT)
    assert_rejected(post(client, body, None), "missing_signature")


def test_malformed_header(client, stripe_on):
    body, _ = signed(EVENT)
    assert_rejected(post(client, body, "v1=abc"), "invalid_signature")


def test_stale_timestamp(client, stripe_on):
    body, header = signed(EVENT, timestamp=int(time.time()) - 301)
    assert_rejected(post(client, body, header), "signature_timestamp_stale")


def test_future_timestamp(client, stripe_on):
    body, header = signed(EVENT, timestamp=int(time.time()) + 120)
    assert_rejected(post(client, body, header), "signature_timestamp_future")


def test_body_changed_after_signing(client, stripe_on):
    body, header = signed(EVENT)
    changed = body.replace("pi_unknown", "pi_changed")
    assert_rejected(post(client, changed, header), "invalid_signature")


def test_signed_but_not_an_event(client, stripe_on):
    body, header = signed(json.dumps({"hello": "world"}))
    assert_rejected(post(client, body, header), "invalid_payload")


def test_no_secret_configured(client, stripe_on):
    stripe_on.STRIPE_WEBHOOK_SECRET = ""
    body, header = signed(EVENT)
    assert_rejected(post(client, body, header), "webhook_not_configured")


def test_get_is_not_allowed(client, stripe_on):
    response = client.get(WEBHOOK_PATH)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
