"""Inbox dispatch (WEBHOOK_DISPATCH = "inbox", production's): the webhook request stores the
event and enqueues nothing; the workers' dispatchers claim new rows, enqueue each once and mark
it dispatched, side by side without sending one event twice."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from payments.models import WebhookEvent
from payments.webhooks.inbox import webhook_dispatch, webhook_process
from tests.payments.stripe.conftest import WEBHOOK_PATH, signed, stripe_event, stripe_on  # noqa: F401

pytestmark = pytest.mark.django_db


def deliver(client, event_id: str):  # type: ignore[no-untyped-def]
    body, header = signed(
        stripe_event("payment_intent.created", {"id": "pi_x", "object": "payment_intent"}, event_id)
    )
    response = client.post(
        WEBHOOK_PATH, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 200, response.content
    return WebhookEvent.objects.get(event_id=event_id)


def inbox_events(n: int, object_key: str = "") -> list[int]:
    start = WebhookEvent.objects.count()
    return [
        WebhookEvent.objects.create(
            provider="stripe",
            event_id=f"evt_d{start + i}",
            event_type="x",
            payload={"data": {"object": {"id": "x"}}},
            object_key=object_key,
        ).pk
        for i in range(n)
    ]


@pytest.mark.parametrize("mode, enqueued", [("inbox", 0), ("request", 1)])
def test_only_request_mode_enqueues_from_the_request(
    client,
    settings,
    stripe_on,  # noqa: F811
    django_capture_on_commit_callbacks,
    mode,
    enqueued,
):
    settings.WEBHOOK_DISPATCH = mode
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event = deliver(client, f"evt_{mode}_mode")
    assert len(callbacks) == enqueued
    event.refresh_from_db()
    # tests run tasks eagerly: an enqueue has processed it already
    assert event.attempts == enqueued and event.dispatched_at is None


def test_dispatch_sends_new_events_once_oldest_first():
    ids = inbox_events(5)
    WebhookEvent.objects.filter(pk=ids[1]).update(status="processed")
    sent: list[int] = []
    assert webhook_dispatch(sent.append, limit=3) == [ids[0], ids[2], ids[3]]
    assert webhook_dispatch(sent.append, limit=3) == [ids[4]]
    assert webhook_dispatch(sent.append) == []
    assert sent == [ids[0], ids[2], ids[3], ids[4]]
    assert not WebhookEvent.objects.filter(status="received", dispatched_at__isnull=True).exists()


def test_one_task_for_the_newest_event_of_each_object():
    a = inbox_events(3, "payment_intent:pi_a")
    loose = inbox_events(2)
    b = inbox_events(2, "payment_intent:pi_b")
    sent: list[int] = []
    claimed = webhook_dispatch(sent.append)
    assert claimed == sorted(a + loose + b)  # all claimed and marked dispatched
    assert sent == sorted([a[-1], *loose, b[-1]])  # the newest's re-read covers the older
    assert not WebhookEvent.objects.filter(dispatched_at__isnull=True).exists()
    for event_id in sent:
        webhook_process(event_id)
    rows = WebhookEvent.objects.in_bulk()
    assert {row.status for row in rows.values()} == {"processed"}
    assert [rows[pk].covered_by_id for pk in a] == [a[-1], a[-1], None]


def test_a_failed_send_leaves_the_events_to_the_next_pass():
    ids = inbox_events(2)

    def broker_down(event_id: int) -> None:
        raise ConnectionError("broker unreachable")

    with pytest.raises(ConnectionError):
        webhook_dispatch(broker_down)
    assert WebhookEvent.objects.filter(dispatched_at__isnull=True).count() == 2
    sent: list[int] = []
    assert webhook_dispatch(sent.append) == ids


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_take_different_events():
    ids = inbox_events(4)
    claimed, release = threading.Event(), threading.Event()
    first: list[int] = []

    def slow_send(event_id: int) -> None:  # the first dispatcher holds its claim open
        first.append(event_id)
        claimed.set()
        release.wait(10)

    def run_first() -> None:
        try:
            webhook_dispatch(slow_send, limit=2)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run_first)
    thread.start()
    assert claimed.wait(10)
    second: list[int] = []
    assert webhook_dispatch(second.append) == ids[2:]  # the first's rows are skipped, not waited on
    release.set()
    thread.join(10)
    assert first == ids[:2]
    assert webhook_dispatch(second.append) == []
