"""The inbox never stores a secret a provider sent: a PaymentIntent's client_secret, or any
field named like a secret, in every event type the sources accept."""

from __future__ import annotations

import json

import pytest

from payments.models import WebhookEvent
from payments.webhooks.inbox import strip_secrets
from tests.payments.stripe.conftest import WEBHOOK_PATH, signed, stripe_event, stripe_on  # noqa: F401

pytestmark = pytest.mark.django_db

SECRET = "pi_3Secret_secret_ZZtopSecretValue"
STRIPE_TYPES = [
    "payment_intent.created",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "charge.succeeded",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "charge.dispute.created",
    "charge.dispute.closed",
    "account.updated",
]


def an_object(event_type: str) -> dict:
    obj = {"id": "pi_3Secret", "object": event_type.split(".")[0], "client_secret": SECRET}
    obj["payment_method_details"] = {"card": {"api_key": SECRET, "last4": "4242"}}
    obj["charges"] = {"data": [{"id": "ch_1", "payment_intent_client_secret": SECRET}]}
    return obj


@pytest.mark.parametrize("event_type", STRIPE_TYPES)
def test_stored_stripe_events_hold_no_secret(client, stripe_on, event_type):  # noqa: F811
    body, header = signed(stripe_event(event_type, an_object(event_type), f"evt_{event_type}"))
    response = client.post(
        WEBHOOK_PATH, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 200, response.content
    stored = WebhookEvent.objects.get(event_id=f"evt_{event_type}")
    assert SECRET not in json.dumps(stored.payload)
    assert stored.payload["data"]["object"]["id"] == "pi_3Secret"  # the rest is kept


def test_strip_secrets_keeps_other_fields_and_empty_values():
    value = {"client_secret": "x", "token": None, "tokenization_method": "apple_pay", "n": [1]}
    assert strip_secrets(value) == {
        "client_secret": "[removed]",
        "token": None,
        "tokenization_method": "apple_pay",
        "n": [1],
    }
