"""Issuing a receipt takes the order's lock before it touches the payment's row (PostgreSQL).

A receipt's insert takes a key-share lock on its payment row (foreign key) and its audit
row one on the order row. The payment services lock the order, then the payment. Issuing
in the other order deadlocked against a refund being applied on the same order (seen in
``test_ten_concurrent_refunds_of_30_percent_exactly_three_win``)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from orders.services import order_lock
from payments.models import PaymentTransaction
from receipts.models import PaymentReceipt
from receipts.services import receipt_issue_for_payment
from tests.payflows import paid_card_payment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_receipt_issue_waits_for_the_order_before_locking_the_payment(order):
    payment = paid_card_payment(order)
    PaymentReceipt.objects.filter(payment=payment).delete()  # issue it again below
    box: dict = {}

    def issue() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                box["pid"] = cursor.fetchone()[0]
            box["receipt"] = receipt_issue_for_payment(payment_id=payment.id)[0]
        except BaseException as exc:
            box["error"] = exc
        finally:
            connections.close_all()

    with transaction.atomic():
        order_lock(order.id)  # what a payment service holds first
        thread = threading.Thread(target=issue)
        thread.start()
        deadline = time.monotonic() + 20
        waiting = False
        while not waiting and time.monotonic() < deadline:
            time.sleep(0.05)
            if "pid" not in box:
                continue
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [box["pid"]]
                )
                row = cursor.fetchone()
            waiting = bool(row and row[0] == "Lock")
        assert waiting, box.get("error")
        # The issue waits for the order and holds nothing on the payment: the service's
        # next step (lock the payment) goes through at once.
        PaymentTransaction.objects.select_for_update(nowait=True).get(pk=payment.id)
    thread.join(30)
    assert "error" not in box, box.get("error")
    assert box["receipt"].payment_id == payment.id
