"""The audit trail is append-only: in code, in admin and, on PostgreSQL, in the database."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from common.errors import NotFound
from orders.audit import Actor, record_event
from orders.models import AppendOnlyError, OrderPaymentEvent
from orders.selectors import order_get_for_user
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(order, actor):
    return record_event(order_id=order.id, entity="order", action="note", actor=actor)


def test_saving_an_existing_event_raises(event):
    event.action = "changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    assert OrderPaymentEvent.objects.get(pk=event.pk).action == "note"


def test_deleting_raises(event):
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        OrderPaymentEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        OrderPaymentEvent.objects.all().update(action="x")
    assert OrderPaymentEvent.objects.filter(pk=event.pk, action="note").exists()


def test_admin_cannot_change_or_delete(client, staff, event):
    client.force_login(staff)
    url = f"/admin/orders/orderpaymentevent/{event.pk}/"
    assert client.get(url + "change/").status_code == 200  # view only
    client.post(url + "change/", {"action": "edited"})
    assert client.post(url + "delete/", {"post": "yes"}).status_code == 403
    assert OrderPaymentEvent.objects.get(pk=event.pk).action == "note"


def test_event_records_its_actor(order, staff):
    event = record_event(
        order_id=order.id,
        entity="order",
        action="note",
        actor=Actor.for_admin(staff, reference="req-42"),
        details={"why": "test"},
    )
    event = OrderPaymentEvent.objects.get(pk=event.pk)
    assert (event.actor_type, event.actor_user, event.actor_label, event.reference) == (
        "admin",
        staff,
        "staff",
        "req-42",
    )
    assert event.details == {"why": "test"}


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE orders_orderpaymentevent SET action = 'rewritten' WHERE id = %s",
        "DELETE FROM orders_orderpaymentevent WHERE id = %s",
    ],
)
def test_postgres_trigger_refuses_raw_update_and_delete(event, sql):
    with pytest.raises(DatabaseError) as err, transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql, [event.pk])
    assert "append-only" in str(err.value)
    assert OrderPaymentEvent.objects.filter(pk=event.pk, action="note").exists()


def test_strangers_get_not_found(order):
    stranger = UserFactory(username="stranger")
    with pytest.raises(NotFound):
        order_get_for_user(stranger, order.id)
    with pytest.raises(NotFound):
        order_get_for_user(stranger, "not-a-uuid")
    assert order_get_for_user(order.buyer, order.id) == order
    assert order_get_for_user(order.seller, str(order.id)) == order
