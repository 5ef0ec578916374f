"""The database connection killed (``pg_terminate_backend`` from another session) while a
service holds its transaction half-written: everything rolls back, and doing it again works.

The service runs on a thread; a Django ``execute_wrapper`` holds it just before a later
statement of the same transaction (the payment row and its audit row already written), the
test terminates that backend, and the statement then fails on the dead connection."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.utils import Error as DatabaseError

from orders.audit import Actor
from orders.models import Order, OrderPaymentEvent
from payments.models import PaymentTransaction, Refund
from payments.providers.base import Outcome, ProviderResult
from payments.services.payments import payment_apply_result
from payments.services.refunds import payment_refund
from tests.payflows import paid_card_payment, start_payment

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def killed_midway(service, stop_before: str) -> BaseException | None:  # type: ignore[no-untyped-def]
    """Run ``service()`` on a thread; kill its backend when it is about to run the first
    statement starting with ``stop_before``; return what the thread raised."""
    reached, resume = threading.Event(), threading.Event()
    box: dict = {}

    def hold(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.lstrip().startswith(stop_before) and not reached.is_set():
            assert connection.in_atomic_block  # inside the service's transaction
            reached.set()
            resume.wait(30)
        return execute(sql, params, many, context)

    def run() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                box["pid"] = cursor.fetchone()[0]
            with connection.execute_wrapper(hold):
                service()
        except BaseException as exc:
            box["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    assert reached.wait(30), box.get("error")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [box["pid"]])
        assert cursor.fetchone()[0] is True
    resume.set()
    thread.join(30)
    return box.get("error")


def counts(order) -> tuple:  # type: ignore[no-untyped-def]
    return (
        OrderPaymentEvent.objects.filter(order_id=order.id).count(),
        Refund.objects.count(),
        PaymentTransaction.objects.count(),
    )


def test_connection_killed_while_confirming_a_payment(order):
    payment = start_payment(order)
    before = counts(order)
    actor = Actor.for_webhook("dummy", "evt_db_kill")
    result = ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded")

    def confirm() -> None:
        payment_apply_result(payment_id=payment.id, result=result, actor=actor)

    # stopped when the order is about to follow its payment (payment row and audit written)
    error = killed_midway(confirm, 'UPDATE "orders_order"')
    assert isinstance(error, DatabaseError), error
    payment.refresh_from_db()
    assert payment.status == "pending" and payment.confirmed_at is None
    assert Order.objects.get(pk=order.id).status == "payment_pending"
    assert counts(order) == before  # no partial rows

    confirm()  # the retry (a redelivered webhook) succeeds
    payment.refresh_from_db()
    assert payment.status == "confirmed"
    assert Order.objects.get(pk=order.id).status == "paid"
    assert OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").count() == 1


def test_connection_killed_while_recording_a_refund(order, staff):
    payment = paid_card_payment(order)
    before = counts(order)
    admin = Actor.for_admin(staff)

    def refund() -> None:
        payment_refund(order_id=order.id, actor=admin, amount="40.00", send=False)

    # stopped at the audit row: the refund row and the payment's refunded amount are written
    error = killed_midway(refund, 'INSERT INTO "orders_orderpaymentevent"')
    assert isinstance(error, DatabaseError), error
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("0") and payment.status == "confirmed"
    assert counts(order) == before

    done = payment_refund(order_id=order.id, actor=admin, amount="40.00")
    assert done.status == "succeeded"
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("40.00") and payment.status == "partially_refunded"
    assert Refund.objects.count() == 1
