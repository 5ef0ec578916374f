"""Every endpoint as a stranger (404), anonymous (401); mass assignment changes nothing."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from orders.models import Order
from payments.models import PaymentTransaction
from tests.payments.api.conftest import error_code, pay

pytestmark = pytest.mark.django_db
HASH = "0x" + "cd" * 32


def endpoints(order, payment):
    return [
        ("GET", f"/api/orders/{order.id}", None),
        ("POST", f"/api/orders/{order.id}/payment-transactions", {"payment_method": "fiat"}),
        ("PUT", f"/api/orders/payment-transactions/{payment.id}/status", {"status": "failed"}),
        ("GET", f"/api/orders/{order.id}/payment-status", None),
        ("POST", f"/api/orders/{order.id}/payment/retry", {}),
        ("POST", f"/api/orders/{order.id}/payment/refund", {"amount": "1"}),
        (
            "POST",
            "/api/orders/payment/monitor-blockchain",
            {"transaction_id": str(payment.id), "transaction_hash": HASH},
        ),
        (
            "POST",
            "/api/orders/payment/monitor-blockchain",
            {"order_id": str(order.id), "transaction_hash": HASH},
        ),
        ("POST", f"/api/orders/{order.id}/confirm-delivery", None),
        ("POST", f"/api/orders/{order.id}/dispute", {"reason": "x"}),
        (
            "POST",
            f"/api/orders/{order.id}/resolve-dispute",
            {"buyer_amount": "1", "seller_amount": "0"},
        ),
    ]


def call(client, method, url, body):
    if method == "GET":
        return client.get(url)
    return client.generic(method, url, "" if body is None else __import__("json").dumps(body))


def test_stranger_gets_404_everywhere_and_nothing_changes(api_for, stranger, order):
    payment = pay(order, confirm=False, method="crypto")
    client = api_for(stranger)
    for method, url, body in endpoints(order, payment):
        r = call(client, method, url, body)
        assert r.status_code == 404, (method, url, r.content)
        assert error_code(r) in ("order_not_found", "payment_not_found")
    payment.refresh_from_db()
    assert payment.status == "pending" and PaymentTransaction.objects.count() == 1
    assert client.get("/api/orders").json()["count"] == 0


def test_anonymous_gets_401_everywhere(api_for, order):
    payment = pay(order, confirm=False)
    client = api_for(None)
    for method, url, body in [*endpoints(order, payment), ("GET", "/api/orders", None)]:
        r = call(client, method, url, body)
        assert r.status_code == 401, (method, url)
        assert error_code(r) == "not_authenticated" and r["WWW-Authenticate"] == "Token"


def test_token_auth_and_bad_token(api_for, buyer, order):
    token = Token.objects.create(user=buyer)
    client = api_for(None)
    r = client.get(f"/api/orders/{order.id}", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert r.status_code == 200
    r = client.get(f"/api/orders/{order.id}", HTTP_AUTHORIZATION="Token nope")
    assert r.status_code == 401 and error_code(r) == "authentication_failed"


@pytest.mark.parametrize(
    "extra",
    [
        {"status": "paid"},
        {"fee_amount": "0.00"},
        {"confirmations": 99},
        {"total_paid": "100"},
        {"buyer_id": 1},
        {"order_id": "00000000-0000-0000-0000-000000000000"},
        {"id": "00000000-0000-0000-0000-000000000000"},
    ],
)
def test_mass_assignment_is_rejected(buyer_api, seller_api, order, extra):
    before = list(PaymentTransaction.objects.values())
    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions", {"payment_method": "crypto", **extra}
    )
    assert r.status_code == 400 and next(iter(extra)) in r.json()["error"]["details"]
    r = buyer_api.post_json(f"/api/orders/{order.id}/payment/retry", extra)
    assert r.status_code in (400,)
    r = seller_api.post_json(f"/api/orders/{order.id}/payment/refund", extra)
    assert r.status_code == 400
    assert list(PaymentTransaction.objects.values()) == before
    order_before = Order.objects.filter(pk=order.pk).values().get()
    r = buyer_api.post_json(
        "/api/orders",
        {"seller_id": order.seller_id, "amount": "1", "currency": "USD", **extra},
    )
    assert r.status_code == 400
    assert Order.objects.count() == 1
    assert Order.objects.filter(pk=order.pk).values().get() == order_before


def test_seller_id_of_others_cannot_make_someone_else_the_buyer(buyer_api, buyer, seller):
    r = buyer_api.post_json(
        "/api/orders", {"seller_id": seller.pk, "amount": "1", "currency": "USD"}
    )
    assert r.status_code == 201 and r.json()["buyer_id"] == buyer.pk
