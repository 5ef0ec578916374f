"""The OpenAPI document, the docs page, the error format at the edges, throttling, limits."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.payments.api.conftest import error_code, openapi_schema

pytestmark = pytest.mark.django_db


def test_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "Idempotency-Key" in out.read_text()


def test_schema_documents_every_endpoint_auth_and_errors():
    schema = openapi_schema()
    paths = schema["paths"]
    expected = {
        ("/api/orders", "get"),
        ("/api/orders", "post"),
        ("/api/orders/{order_id}", "get"),
        ("/api/orders/{order_id}/payment-transactions", "post"),
        ("/api/orders/payment-transactions/{transaction_id}/status", "put"),
        ("/api/orders/{order_id}/payment-status", "get"),
        ("/api/orders/{order_id}/payment/retry", "post"),
        ("/api/orders/{order_id}/payment/refund", "post"),
        ("/api/orders/payment/webhook", "post"),
        ("/api/orders/payment/monitor-blockchain", "post"),
    }
    assert expected <= {(p, m) for p, ops in paths.items() for m in ops}
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])
    for path, method in expected - {("/api/orders/payment/webhook", "post")}:
        op = paths[path][method]
        assert ("401" in op["responses"] and "404" in op["responses"]) or path == "/api/orders"
        if method == "post":
            names = [p["name"] for p in op.get("parameters", [])]
            assert "Idempotency-Key" in names, path
            assert "requestBody" in op


def test_swagger_ui_is_served_without_a_cdn(client):
    r = client.get("/api/docs/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "swagger-ui" in html and "cdn.jsdelivr" not in html and "unpkg" not in html
    assert client.get("/api/schema/").status_code == 200


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "malformed_request"),
        # Deeper than the recursion limit (other tests may raise it): never a 500.
        ("[" * 30000 + "]" * 30000, "application/json", 400, "malformed_request"),
        ('{"amount": NaN}', "application/json", 400, "malformed_request"),
        ("seller_id=1", "text/plain", 415, "unsupported_media_type"),
        ("[1, 2]", "application/json", 400, "invalid_request"),
    ],
)
def test_malformed_requests(buyer_api, raw, content_type, status, code):
    r = buyer_api.generic("POST", "/api/orders", raw, content_type=content_type)
    assert r.status_code == status
    assert error_code(r) == code or (raw.startswith("[[") and error_code(r) == "invalid_request")


def test_huge_integer_is_400(buyer_api, seller):
    raw = f'{{"seller_id": {seller.pk}, "amount": {"9" * 5000}, "currency": "USD"}}'
    r = buyer_api.generic("POST", "/api/orders", raw)
    assert r.status_code == 400


@pytest.mark.parametrize("depth", [65, 900, 12_000])
def test_a_body_nested_deeper_than_64_is_400_everywhere(buyer_api, seller, order, depth):
    nested = "[" * depth + "]" * depth
    order_body = (
        f'{{"seller_id": {seller.pk}, "amount": "5", "currency": "USD", '
        f'"items": [{{"sku": "A", "quantity": 1, "x": {nested}}}]}}'
    )
    for path, raw in [
        ("/api/orders", order_body),
        (f"/api/orders/{order.id}/payment-transactions", f'{{"payment_method": {nested}}}'),
        ("/api/receipts/verify", f'{{"receipt_number": {nested}}}'),
    ]:
        r = buyer_api.generic("POST", path, raw)
        assert r.status_code == 400 and error_code(r) == "malformed_request", (path, r.content)


@pytest.mark.parametrize("text", [r"a\u0000b", r"\ud800"])
def test_a_string_no_database_stores_is_400(buyer_api, seller, text):
    raw = (
        f'{{"seller_id": {seller.pk}, "amount": "5", "currency": "USD", '
        f'"items": [{{"name": "{text}"}}]}}'
    )
    r = buyer_api.generic("POST", "/api/orders", raw)
    assert r.status_code == 400 and error_code(r) == "malformed_request"


@pytest.mark.parametrize(
    "items",
    [
        [{"sku": "MUG-1", "quantity": 1, "colour": "red"}],  # an undeclared field
        [{"quantity": 2}],  # neither sku nor name
        [{"sku": "MUG 1"}],  # not a stock code
        [{"sku": "MUG-1", "quantity": 0}],
        [{"name": {"nested": ["deep"]}}],
        ["MUG-1"],
    ],
)
def test_order_items_are_checked_field_by_field(buyer_api, seller, items):
    body = {"seller_id": seller.pk, "amount": "5", "currency": "USD", "items": items}
    r = buyer_api.post_json("/api/orders", body)
    assert r.status_code == 400 and error_code(r) == "invalid_request"
    assert "items" in r.json()["error"]["details"]


def test_order_items_are_kept_as_given(buyer_api, seller):
    items = [{"sku": "MUG-1", "quantity": 2}, {"name": "Gift wrap"}]
    body = {"seller_id": seller.pk, "amount": "5", "currency": "USD", "items": items}
    r = buyer_api.post_json("/api/orders", body)
    assert r.status_code == 201
    assert r.json()["items"] == [
        {"sku": "MUG-1", "quantity": 2},
        {"name": "Gift wrap", "quantity": 1},
    ]


def test_method_not_allowed(buyer_api, order):
    buyer_api.check_contract = False  # an undocumented method, on purpose
    r = buyer_api.generic("DELETE", f"/api/orders/{order.id}")
    assert r.status_code == 405 and error_code(r) == "method_not_allowed"


@override_settings(API_MAX_BODY_BYTES=1024)
def test_body_too_large_is_413(buyer_api, seller, order):
    body = {"seller_id": seller.pk, "amount": "1", "currency": "USD", "description": "x" * 2000}
    r = buyer_api.post_json("/api/orders", body)
    assert r.status_code == 413 and error_code(r) == "request_too_large"
    r = buyer_api.post_json(f"/api/orders/{order.id}/payment/refund", {"reason": "x" * 2000})
    assert r.status_code == 413


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100, API_MAX_BODY_BYTES=10**6)
def test_body_above_django_limit_is_413(buyer_api, seller):
    body = {"seller_id": seller.pk, "amount": "1", "currency": "USD", "description": "x" * 200}
    r = buyer_api.post_json("/api/orders", body)
    assert r.status_code == 413 and error_code(r) == "request_too_large"


def test_throttling_gives_429_with_retry_after(buyer_api, order, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "payment_retry": "2/minute"}
    url = f"/api/orders/{order.id}/payment/retry"
    codes = [buyer_api.post_json(url, {}).status_code for _ in range(3)]
    assert codes == [409, 409, 429]
    r = buyer_api.post_json(url, {})
    assert r.status_code == 429 and error_code(r) == "throttled"
    assert int(r["Retry-After"]) > 0
    assert r.json()["error"]["details"]["retry_after"] == int(r["Retry-After"])
    # Other scopes are counted apart.
    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions", {"payment_method": "fiat"}
    )
    assert r.status_code == 201


def test_orders_with_a_payment_share_the_payments_limit(buyer_api, seller, order, settings):
    """Creating orders with a payment method cannot sidestep the payment-creation limit."""
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "payments": "3/minute"}
    body = {"seller_id": seller.pk, "amount": "10", "currency": "USD", "payment_method": "fiat"}
    codes = [buyer_api.post_json("/api/orders", body).status_code for _ in range(3)]
    assert codes == [201, 201, 201]
    assert buyer_api.post_json("/api/orders", body).status_code == 429
    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions", {"payment_method": "fiat"}
    )
    assert r.status_code == 429  # the same bucket
    # orders without a payment, and reads, are not payment creations
    plain = {k: v for k, v in body.items() if k != "payment_method"}
    assert buyer_api.post_json("/api/orders", plain).status_code == 201
    assert buyer_api.get("/api/orders").status_code == 200


def test_error_body_shape_is_the_same_everywhere(buyer_api, order):
    r = buyer_api.post_json(f"/api/orders/{order.id}/payment-transactions", {})
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["details"]["payment_method"][0]["code"] == "required"
    assert json.loads(io.BytesIO(r.content).read())


@pytest.mark.django_db
def test_unknown_api_urls_answer_in_the_error_format(client):
    for path in ("/api/nowhere", "/api/orders/not-a-uuid/no-such-action"):
        response = client.post(path, data={}, content_type="application/json")
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"
    assert client.get("/not-api").status_code == 404  # the HTML page outside /api/


def test_the_schema_states_the_rules_and_links_the_ids():
    schema = openapi_schema()
    schemas = schema["components"]["schemas"]
    closed = [n for n, c in schemas.items() if n.endswith("Request") and c.get("type") == "object"]
    assert closed and all(schemas[n]["additionalProperties"] is False for n in closed)
    variants = schemas["PaymentCreateInputRequest"]["oneOf"]
    by_method = {v["properties"]["payment_method"]["enum"][0]: v for v in variants}
    assert "payer_address" not in by_method["fiat"]["properties"]
    assert "payer_address" in by_method["crypto"]["required"]
    amount = by_method["fiat"]["properties"]["amount"]
    assert "ETH 500" in amount["description"] and amount["oneOf"][0]["maxLength"] == 64
    created = schema["paths"]["/api/orders"]["post"]["responses"]["201"]["links"]
    assert created["StartPayment"] == {
        "operationId": "payment_transactions_create",
        "parameters": {"order_id": "$response.body#/id"},
    }
    started = schema["paths"]["/api/orders/{order_id}/payment-transactions"]["post"]
    assert started["responses"]["201"]["links"]["SetPaymentStatus"]["parameters"] == {
        "transaction_id": "$response.body#/id"
    }


@pytest.mark.parametrize(
    "body",
    [
        {"payment_method": "fiat", "token": "USDC"},
        {"payment_method": "fiat", "payer_address": "0x" + "ab" * 20},
        {"payment_method": "fiat", "chain_id": 31337},
    ],
)
def test_a_field_of_another_payment_method_is_refused(buyer_api, order, body):
    r = buyer_api.post_json(f"/api/orders/{order.id}/payment-transactions", body)
    assert r.status_code == 400
    [field] = [k for k in body if k != "payment_method"]
    assert r.json()["error"]["details"][field][0]["code"] == "not_for_method"
