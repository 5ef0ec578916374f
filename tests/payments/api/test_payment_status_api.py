"""GET payment-status: content, can_retry/can_refund, cache invalidation, query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.audit import Actor
from orders.services import order_mark_shipped
from payments.models import PaymentTransaction
from payments.services.refunds import payment_refund
from receipts.models import PaymentReceipt
from receipts.services import receipt_issue_for_payment
from tests.factories import PaymentFactory
from tests.payments.api.conftest import fail, pay

pytestmark = pytest.mark.django_db


def url(order):
    return f"/api/orders/{order.id}/payment-status"


def test_payment_status_of_paid_order(buyer_api, seller_api, paid_order):
    payment = PaymentTransaction.objects.get()
    receipt, _ = receipt_issue_for_payment(payment_id=payment.id)
    body = buyer_api.get(url(paid_order)).json()
    assert body["order_status"] == "paid" and body["payment_status"] == "confirmed"
    assert body["payment_method"] == "fiat" and body["total_paid"] == "100.00"
    assert body["total_refunded"] == "0.00" and body["outstanding_amount"] == "0.00"
    assert body["can_retry"] is False and body["can_refund"] is False  # buyer may not refund
    assert body["receipts"] == [
        {
            "id": str(receipt.id),
            "number": receipt.number,
            "kind": "receipt",
            "amount": "100.00",
            "currency": "USD",
            "issued_at": body["receipts"][0]["issued_at"],
            "url": f"http://testserver/api/receipts/{receipt.id}/pdf",
        }
    ]
    assert buyer_api.get(body["receipts"][0]["url"]).status_code == 200
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
    # the receipt issued on the payment's commit
    receipt = PaymentReceipt.objects.get(payment=payment, kind="receipt")
    assert [r["number"] for r in body["receipts"]] == [receipt.number]
    with django_capture_on_commit_callbacks(execute=True):
        payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="10")
    body = buyer_api.get(url(order)).json()
    assert body["total_refunded"] == "10.00"
    assert [r["kind"] for r in body["receipts"]] == ["receipt", "credit_note"]
    with django_capture_on_commit_callbacks(execute=True):
        order_mark_shipped(order_id=order.id, actor=Actor.for_user(order.seller))
    assert buyer_api.get(url(order)).json()["order_status"] == "shipped"


def test_a_receipt_issued_later_is_visible_on_the_next_read(
    buyer_api, order, django_capture_on_commit_callbacks, monkeypatch
):
    from receipts.tasks import issue_payment_receipt

    monkeypatch.setattr(issue_payment_receipt, "delay", lambda *args, **kwargs: None)  # lost
    with django_capture_on_commit_callbacks(execute=True):
        payment = pay(order)
    assert buyer_api.get(url(order)).json()["receipts"] == []  # and now cached
    # the sweeper's (or the admin's) way: the receipt service alone, nothing else changes
    with django_capture_on_commit_callbacks(execute=True):
        receipt, created = receipt_issue_for_payment(payment_id=payment.id)
    assert created
    assert [r["number"] for r in buyer_api.get(url(order)).json()["receipts"]] == [receipt.number]


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


def test_the_cache_holds_json_text_and_a_hit_answers_as_a_miss(buyer_api, seller_api, paid_order):
    import json

    from django.core.cache import cache

    from payments.selectors import _data_key, payment_status_invalidate, payment_status_version

    payment = PaymentTransaction.objects.get()
    receipt_issue_for_payment(payment_id=payment.id)
    payment_status_invalidate(paid_order.id)
    miss = buyer_api.get(url(paid_order))
    raw = cache.get(_data_key(paid_order.id, payment_status_version(paid_order.id)))
    assert isinstance(raw, str)  # no pickled model instances: a deploy never reads stale ones
    cached = json.loads(raw)
    assert cached["transactions"][0]["id"] == str(payment.id)
    assert cached["receipts"][0]["pdf_url"] == f"/api/receipts/{cached['receipts'][0]['id']}/pdf"
    hit = buyer_api.get(url(paid_order))
    assert hit.content == miss.content
    # the caller's permissions and the request's host are applied to a cached entry
    seller = seller_api.get(url(paid_order), HTTP_HOST="localhost")
    assert seller.json()["can_refund"] is True and hit.json()["can_refund"] is False
    assert seller.json()["receipts"][0]["url"].startswith("http://localhost/api/receipts/")
