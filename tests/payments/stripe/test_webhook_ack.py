"""What acknowledging a webhook costs: one INSERT into the inbox and one enqueue on commit,
nothing else (no session, user or cache reads on the way). docs/performance.md has the
figures; this keeps the path from growing."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.payments.stripe.conftest import WEBHOOK_PATH, signed, stripe_event

pytestmark = pytest.mark.django_db


def test_an_acknowledgement_is_one_insert_and_one_enqueue(
    client, stripe_on, monkeypatch, django_capture_on_commit_callbacks
):
    from payments import tasks

    enqueued = []
    monkeypatch.setattr(tasks.process_webhook_event, "delay", lambda *a: enqueued.append(a))
    body, header = signed(
        stripe_event("payment_intent.succeeded", {"id": "pi_x", "object": "x"}, "evt_ack_1")
    )
    with (
        CaptureQueriesContext(connection) as ctx,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(
            WEBHOOK_PATH, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
        )
    assert response.status_code == 200, response.content
    statements = [
        q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"].upper()
    ]  # the test's own transaction turns the view's atomic block into a savepoint
    assert len(statements) == 1 and statements[0].startswith(
        'INSERT INTO "payments_webhookevent"'
    ), statements
    assert len(enqueued) == 1
