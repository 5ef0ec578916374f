"""GET payment-status: content, can_retry/can_refund, cache invalidation, query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.audit import Actor
from orders.services import order_mark_shipped
from payments.models import PaymentTransaction
from payments.services import payment_refund
from payments.signals import order_payments_changed
from receipts.models import PaymentReceipt
from tests.api.conftest import fail, pay
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def url(order):
    return f"/api/orders/{order.id}/payment-status"


def test_payment_status_of_paid_order(buyer_api, seller_api, paid_order):
    payment = PaymentTransaction.objects.get()
    receipt = PaymentReceipt.objects.create(
        payment=payment,
        order_id=paid_order.id,
        number="R-2026-000001",
        year=2026,
        sequence=1,
        amount=payment.amount,
        currency="USD",
    )
    body = buyer_api.get(url(paid_order)).json()
    assert body["order_status"] == "paid" and body["payment_status"] == "confirmed"
    assert body["payment_method"] == "fiat" and body["total_paid"] == "100.00"
    assert body["total_refunded"] == "0.00" and body["outstanding_amount"] == "0.00"
    assert body["can_retry"] is False and body["can_refund"] is False  # buyer may not refund
    assert body["receipts"] == [
        {
            "id": str(receipt.id),
            "number": "R-2026-000001",
            "kind": "receipt",
            "issued_at": body["receipts"][0]["issued_at"],
            "url": f"http://testserver/api/receipts/{receipt.id}/pdf",
        }
    ]
    assert seller_api.get(url(paid_order)).json()["can_refund"] is True


def test_can_retry_follows_the_retry_rule(buyer_api, seller_api, order):
    fail(pay(order, confirm=False))
    assert buyer_api.get(url(order)).json()["can_retry"] is True
    assert seller_api.get(url(order)).json()["can_retry"] is False  # the seller does not pay


def test_a_change_is_visible_on_the_next_read(
    buyer_api, seller_api, staff, order, django_capture_on_commit_callbacks
):
    assert buyer_api.get(url(order)).json()["transactions"] == []
    with django_capture_on_commit_callbacks(execute=True):
        payment = pay(order)
    body = buyer_api.get(url(order)).json()
    assert body["total_paid"] == "100.00" and body["transactions"][0]["id"] == str(payment.id)
    with django_capture_on_commit_callbacks(execute=True):
        payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="10")
    assert buyer_api.get(url(order)).json()["total_refunded"] == "10.00"
    with django_capture_on_commit_callbacks(execute=True):
        order_mark_shipped(order_id=order.id, actor=Actor.for_user(order.seller))
    assert buyer_api.get(url(order)).json()["order_status"] == "shipped"
    with django_capture_on_commit_callbacks(execute=True):
        PaymentReceipt.objects.create(
            payment=payment,
            order_id=order.id,
            number="R-1",
            year=2026,
            sequence=1,
            amount=payment.amount,
            currency="USD",
        )
        order_payments_changed.send(sender=PaymentReceipt, order_id=order.id)
    assert len(buyer_api.get(url(order)).json()["receipts"]) == 1


def test_answer_is_cached_until_a_change_commits(buyer_api, paid_order):
    buyer_api.get(url(paid_order))
    with CaptureQueriesContext(connection) as ctx:
        buyer_api.get(url(paid_order))
    assert not any("payments_paymenttransaction" in q["sql"] for q in ctx.captured_queries)
    # A write that does not announce itself on commit is not seen (proves the cache is used).
    PaymentTransaction.objects.filter(order=paid_order).update(confirmations=7)
    assert buyer_api.get(url(paid_order)).json()["transactions"][0]["confirmations"] == 0


def _status_queries(client, order) -> int:
    from django.core.cache import cache

    cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(url(order))
    assert r.status_code == 200
    return len(ctx.captured_queries)


def test_query_count_is_constant_for_1_and_50(buyer_api, order):
    payment = pay(order)
    PaymentReceipt.objects.create(
        payment=payment,
        order_id=order.id,
        number="R-0",
        year=2026,
        sequence=0,
        amount=payment.amount,
        currency="USD",
    )
    one = _status_queries(buyer_api, order)
    for i in range(1, 50):
        p = PaymentFactory(order=order, amount="1.00", currency="USD")
        PaymentReceipt.objects.create(
            payment=p,
            order_id=order.id,
            number=f"R-{i}",
            year=2026,
            sequence=i,
            amount=p.amount,
            currency="USD",
            issued_at=timezone.now(),
        )
    assert PaymentTransaction.objects.filter(order=order).count() == 50
    assert _status_queries(buyer_api, order) == one
