"""POST/GET /api/orders and GET /api/orders/{id}."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import Order
from payments.models import PaymentTransaction
from payments.providers.base import Outcome, ProviderResult, ProviderUnavailableError
from payments.providers.dummy import DummyProvider
from tests.factories import UserFactory
from tests.payments.api.conftest import error_code, new_order, pay

pytestmark = pytest.mark.django_db


def test_create_order_without_payment(buyer_api, buyer, seller):
    r = buyer_api.post_json(
        "/api/orders",
        {"seller_id": seller.pk, "amount": "25.50", "currency": "usd", "description": "Mug"},
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["amount"] == "25.50" and body["currency"] == "USD"
    assert body["buyer_id"] == buyer.pk and body["seller_id"] == seller.pk
    assert body["status"] == "created" and body["transaction"] is None
    assert body["transactions"] == [] and body["outstanding_amount"] == "25.50"
    assert Order.objects.get(pk=body["id"]).buyer == buyer


def test_create_order_with_payment_in_one_go(buyer_api, seller):
    DummyProvider.script[("create", "*")] = ProviderResult(
        Outcome.PENDING,
        raw_status="requires_payment_method",
        client_secret="pi_123_secret_abc",
        instructions={"next": "confirm with Stripe.js"},
    )
    r = buyer_api.post_json(
        "/api/orders/",
        {"seller_id": seller.pk, "amount": 10, "currency": "EUR", "payment_method": "fiat"},
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "payment_pending"
    tx = body["transaction"]
    assert tx["payment_method"] == "fiat" and tx["amount"] == "10.00"
    assert tx["client_secret"] == "pi_123_secret_abc"
    assert tx["payment_instructions"] == {"next": "confirm with Stripe.js"}
    assert [t["id"] for t in body["transactions"]] == [tx["id"]]
    assert "client_secret" not in body["transactions"][0]
    payment = PaymentTransaction.objects.get(pk=tx["id"])
    assert "pi_123_secret_abc" not in str(payment.provider_data)


def test_order_and_payment_are_one_transaction(buyer_api, seller, monkeypatch):
    """A payment that cannot be recorded leaves no order behind."""
    from payments.services import payments as services

    def broken(**kwargs):
        raise services.Conflict("boom", code="payment_in_progress")

    monkeypatch.setattr("payments.services.checkout.payment_create", broken)
    r = buyer_api.post_json(
        "/api/orders",
        {"seller_id": seller.pk, "amount": "10", "currency": "USD", "payment_method": "fiat"},
    )
    assert r.status_code == 409
    assert Order.objects.count() == 0


def test_create_order_provider_down_is_502_and_keeps_order(buyer_api, seller):
    DummyProvider.script[("create", "*")] = ProviderUnavailableError("timeout")
    r = buyer_api.post_json(
        "/api/orders",
        {"seller_id": seller.pk, "amount": "10", "currency": "USD", "payment_method": "fiat"},
    )
    assert r.status_code == 502 and error_code(r) == "provider_unavailable"
    payment = PaymentTransaction.objects.get()
    assert payment.status == "unknown"
    assert r.json()["error"]["details"]["transaction_id"] == str(payment.id)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"amount": "-1"}, "invalid_amount", None),
        ({"amount": "0"}, "invalid_amount", None),
        ({"amount": "1.001"}, "invalid_amount", None),
        ({"amount": "1e400"}, "invalid_amount", None),
        ({"amount": "9" * 60}, "invalid_amount", None),
        ({"amount": "abc"}, "invalid_amount", None),
        ({"amount": True}, "invalid_request", "amount"),
        ({"amount": ["1"]}, "invalid_request", "amount"),
        ({"amount": {"v": 1}}, "invalid_request", "amount"),
        ({"currency": "XXX"}, "invalid_request", "currency"),
        ({"currency": 5}, "invalid_request", "currency"),
        ({"payment_method": "cash"}, "invalid_request", "payment_method"),
        ({"seller_id": 10**30}, "invalid_request", "seller_id"),
        ({"seller_id": "x"}, "invalid_request", "seller_id"),
        ({"seller_id": 999999}, "unknown_seller", None),
        ({"items": "nope"}, "invalid_request", "items"),
        ({"items": [{}] * 101}, "invalid_request", "items"),
        ({"description": "x" * 501}, "invalid_request", "description"),
        ({"status": "paid"}, "invalid_request", "status"),
        ({"buyer_id": 1}, "invalid_request", "buyer_id"),
        ({"fee_amount": "0"}, "invalid_request", "fee_amount"),
    ],
)
def test_create_order_rejects_bad_input(buyer_api, seller, body, code, field):
    payload = {"seller_id": seller.pk, "amount": "10.00", "currency": "USD", **body}
    r = buyer_api.post_json("/api/orders", payload)
    assert r.status_code == 400, r.content
    assert error_code(r) == code
    if field:
        assert field in r.json()["error"]["details"]
    assert Order.objects.count() == 0


def test_exact_json_numbers_are_exact(buyer_api, seller):
    r = buyer_api.generic(
        "POST",
        "/api/orders",
        f'{{"seller_id": {seller.pk}, "amount": 0.30, "currency": "USD"}}',
    )
    assert r.status_code == 201 and r.json()["amount"] == "0.30"
    r = buyer_api.generic(
        "POST", "/api/orders", f'{{"seller_id": {seller.pk}, "amount": 0.305, "currency": "USD"}}'
    )
    assert r.status_code == 400 and error_code(r) == "invalid_amount"


def test_buyer_cannot_sell_to_themselves(buyer_api, buyer):
    r = buyer_api.post_json(
        "/api/orders", {"seller_id": buyer.pk, "amount": "1", "currency": "USD"}
    )
    assert r.status_code == 400 and error_code(r) == "buyer_is_seller"


def test_list_is_callers_own_paginated_and_filtered(api_for, buyer, seller, staff):
    other = UserFactory(username="other")
    mine = [new_order(buyer, seller) for _ in range(3)]
    new_order(other, seller)
    new_order(seller, other)
    pay(mine[0])
    r = api_for(buyer).get("/api/orders?page_size=2")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    r = api_for(buyer).get("/api/orders?status=paid")
    assert [o["id"] for o in r.json()["results"]] == [str(mine[0].id)]
    assert r.json()["results"][0]["total_paid"] == "100.00"
    assert r.json()["results"][0]["payment_status"] == "confirmed"
    assert api_for(seller).get("/api/orders").json()["count"] == 5
    assert api_for(seller).get("/api/orders?role=seller").json()["count"] == 4
    assert api_for(staff).get("/api/orders").json()["count"] == 5
    assert api_for(other).get("/api/orders?role=buyer").json()["count"] == 1


def test_list_page_size_is_capped_and_bad_filters_are_400(buyer_api, buyer, seller):
    for _ in range(3):
        new_order(buyer, seller)
    r = buyer_api.get("/api/orders?page_size=100000")
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    r = buyer_api.get("/api/orders?status=bogus")
    assert r.status_code == 400 and "status" in r.json()["error"]["details"]
    r = buyer_api.get("/api/orders?page=99")
    assert r.status_code == 404 and error_code(r) == "not_found"


def _count_list_queries(client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        r = client.get("/api/orders?page_size=100")
    assert r.status_code == 200
    return len(ctx.captured_queries)


def test_list_query_count_is_constant(buyer_api, buyer, seller):
    from tests.payments.api.conftest import fail

    order = new_order(buyer, seller)
    fail(pay(order, confirm=False))
    few = _count_list_queries(buyer_api)
    for _ in range(49):
        o = new_order(buyer, seller)
        for _ in range(3):
            fail(pay(o, confirm=False))
    assert _count_list_queries(buyer_api) == few


def test_detail_shows_transactions(buyer_api, order):
    payment = pay(order)
    r = buyer_api.get(f"/api/orders/{order.id}")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "paid" and body["transactions"][0]["id"] == str(payment.id)
    assert body["transactions"][0]["fee_amount"] == "0.00"


def test_detail_of_unknown_or_malformed_id_is_404(buyer_api):
    assert error_code(buyer_api.get("/api/orders/not-a-uuid")) == "order_not_found"
    r = buyer_api.get("/api/orders/00000000-0000-0000-0000-000000000000/")
    assert r.status_code == 404
