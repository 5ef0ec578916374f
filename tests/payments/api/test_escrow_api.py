"""The escrow endpoints (confirm-delivery, dispute, resolve-dispute) as client API endpoints:
JSON bodies (an empty body where nothing is required), Idempotency-Key, permissions with
codes, the one error format, responses matching the schema. On-chain effects are tested on
anvil in tests/payments/chain/test_chain_escrow.py."""

from __future__ import annotations

import json

import pytest

from orders.models import Order
from payments.models import PaymentTransaction
from tests.factories import UserFactory
from tests.payments.admin.conftest import grant
from tests.payments.api.conftest import error_code, pay

pytestmark = pytest.mark.django_db
ESCROW_ID = "0x" + "ab" * 32
CONTRACT = "0x" + "12" * 20


@pytest.fixture
def held(order):
    """A confirmed escrow payment (dummy provider) with its escrow id and contract."""
    payment = pay(order, method="escrow")
    PaymentTransaction.objects.filter(pk=payment.pk).update(
        escrow_id=ESCROW_ID, contract_address=CONTRACT, chain_id=31337
    )
    return PaymentTransaction.objects.get(pk=payment.pk)


def dispute_url(order):  # type: ignore[no-untyped-def]
    return f"/api/orders/{order.id}/dispute"


def test_dispute_with_an_empty_body_and_a_replayed_key(buyer_api, order, held):
    key = {"HTTP_IDEMPOTENCY_KEY": "dispute-1"}
    first = buyer_api.generic("POST", dispute_url(order), "", **key)
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["status"] == "disputed" and body["transaction_id"] == str(held.id)
    request = body["transaction_request"]
    assert request["to"] == CONTRACT and request["value"] == "0"
    assert request["data"].startswith("0x") and ESCROW_ID[2:] in request["data"]
    assert Order.objects.get(pk=order.pk).status == "disputed"
    again = buyer_api.generic("POST", dispute_url(order), "", **key)
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"
    other = buyer_api.post_json(dispute_url(order), {"reason": "broken"}, **key)
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused"


def test_dispute_refuses_unknown_fields_and_form_bodies(seller_api, order, held):
    r = seller_api.post_json(dispute_url(order), {"reason": "x", "status": "refunded"})
    assert r.status_code == 400 and error_code(r) == "invalid_request"
    assert "status" in r.json()["error"]["details"]
    r = seller_api.generic(
        "POST", dispute_url(order), "reason=x", content_type="application/x-www-form-urlencoded"
    )
    assert r.status_code == 415 and error_code(r) == "unsupported_media_type"
    assert PaymentTransaction.objects.get(pk=held.pk).status == "confirmed"


def test_who_may_do_what(api_for, buyer_api, seller_api, staff, order, held):
    r = seller_api.generic("POST", f"/api/orders/{order.id}/confirm-delivery", "")
    assert r.status_code == 403 and error_code(r) == "not_buyer"
    resolve = f"/api/orders/{order.id}/resolve-dispute"
    split = {"buyer_amount": "50", "seller_amount": "50.00"}
    for client in (buyer_api, seller_api):
        r = client.post_json(resolve, split)
        assert r.status_code == 403 and error_code(r) == "not_arbiter"
    clerk = UserFactory(username="clerk", is_staff=True)
    r = api_for(clerk).post_json(resolve, split)
    assert r.status_code == 403 and error_code(r) == "not_arbiter"
    # staff with the refund permission reach the service: nothing is disputed yet
    support = grant(UserFactory(username="support", is_staff=True), "payments.refund_payment")
    r = api_for(support).post_json(resolve, split)
    assert r.status_code == 409 and error_code(r) == "no_escrow_payment"
    r = api_for(support).post_json(resolve, {"buyer_amount": [1], "seller_amount": True})
    assert r.status_code == 400 and set(r.json()["error"]["details"]) == {
        "buyer_amount",
        "seller_amount",
    }


def test_confirm_delivery_without_an_escrow_payment_is_409(buyer_api, order):
    pay(order)  # a card payment
    r = buyer_api.generic("POST", f"/api/orders/{order.id}/confirm-delivery", json.dumps({}))
    assert r.status_code == 409 and error_code(r) == "no_escrow_payment"
