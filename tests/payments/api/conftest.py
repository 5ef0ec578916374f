"""Fixtures of the client API tests. Every response the ``api`` client receives is checked
against the OpenAPI schema (documented status, body matching its schema)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests
import schemathesis
from django.test import RequestFactory
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from orders.audit import Actor
from payments.providers.base import Outcome, ProviderResult
from payments.services.payments import payment_apply_result, payment_create, payment_start
from tests.factories import OrderFactory, UserFactory

_SCHEMA: dict[str, Any] = {}


def openapi_schema() -> dict[str, Any]:
    if not _SCHEMA:
        generated = SchemaGenerator().get_schema(request=None, public=True)
        # Round-trip through JSON: what clients download.
        from drf_spectacular.renderers import OpenApiJsonRenderer

        _SCHEMA.update(json.loads(OpenApiJsonRenderer().render(generated)))
    return _SCHEMA


_LOADED: list[Any] = []


def contract() -> Any:
    if not _LOADED:
        _LOADED.append(schemathesis.openapi.from_dict(openapi_schema()))
    return _LOADED[0]


def assert_matches_schema(method: str, path: str, response: Any) -> None:
    """The response's status is documented for the operation and its body matches."""
    path = path.split("?")[0]
    if not path.startswith("/api/orders"):
        return
    operation = contract().find_operation_by_path(method, path.rstrip("/") or path)
    assert operation is not None, f"{method} {path} is not in the schema"
    documented = openapi_schema()["paths"][operation.path][method.lower()]["responses"]
    assert str(response.status_code) in documented, (
        f"{method} {path} answered {response.status_code}, documented: {sorted(documented)}"
    )
    prepared = requests.Request(method, f"http://testserver{path}").prepare()
    wrapped = schemathesis.Response(
        status_code=response.status_code,
        headers={k: [v] for k, v in response.headers.items()},
        content=response.content,
        request=prepared,
        elapsed=0.0,
        verify=True,
    )
    operation.validate_response(wrapped)


class ContractClient(APIClient):
    """An APIClient (JSON by default) whose every answer is checked against the schema."""

    check_contract = True

    def generic(self, method, path, data="", content_type="application/json", **extra):  # type: ignore[no-untyped-def,override]
        response = super().generic(method, path, data, content_type, **extra)
        if self.check_contract:
            assert_matches_schema(method, path, response)
        return response

    def post_json(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self.generic("POST", path, json.dumps(body if body is not None else {}), **extra)

    def put_json(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self.generic("PUT", path, json.dumps(body if body is not None else {}), **extra)

    def get(self, path, data=None, follow=False, **extra):  # type: ignore[no-untyped-def,override]
        response = super().get(path, data, follow, **extra)
        return response


@pytest.fixture
def api_for():
    def make(user: Any = None) -> ContractClient:
        client = ContractClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def buyer_api(api_for, buyer):
    return api_for(buyer)


@pytest.fixture
def seller_api(api_for, seller):
    return api_for(seller)


@pytest.fixture
def staff_api(api_for, staff):
    return api_for(staff)


@pytest.fixture
def stranger(db):
    return UserFactory(username="stranger")


@pytest.fixture
def rf():
    return RequestFactory()


def pay(order: Any, *, confirm: bool = True, method: str = "fiat") -> Any:
    """A payment for the whole order, started, and (by default) confirmed by the provider."""
    actor = Actor.for_user(order.buyer)
    payment = payment_create(order_id=order.id, method=method, actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    if confirm:
        payment_apply_result(
            payment_id=payment.id,
            actor=Actor.for_webhook("dummy", f"evt_{payment.id}"),
            result=ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded"),
        )
    return type(payment).objects.get(pk=payment.pk)


def fail(payment: Any, code: str = "card_declined") -> Any:
    payment_apply_result(
        payment_id=payment.id,
        actor=Actor.for_webhook("dummy", f"evt_fail_{payment.id}"),
        result=ProviderResult(Outcome.FAILED, raw_status="failed", error_code=code),
    )
    return type(payment).objects.get(pk=payment.pk)


@pytest.fixture
def paid_order(order):
    pay(order)
    return type(order).objects.get(pk=order.pk)


def new_order(buyer: Any, seller: Any, amount: str = "100.00", currency: str = "USD") -> Any:
    return OrderFactory(buyer=buyer, seller=seller, amount=Decimal(amount), currency=currency)


def error_code(response: Any) -> str:
    return response.json()["error"]["code"]
