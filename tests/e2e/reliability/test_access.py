"""Every endpoint called by someone who may not act: anonymous (401), a stranger and a buyer
on another's order (404: the order does not exist for them), staff without the permission
(403 where the action needs one). Whatever the answer, no row of any table changes.

The list of calls is checked against the URL configuration, so a new endpoint that is not
called here fails this test."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.authtoken.models import Token

from ops.models import SecurityEvent
from orders.audit import Actor
from payments.models import PaymentTransaction
from receipts.services import receipt_issue_for_payment
from tests.factories import OrderFactory, UserFactory
from tests.payflows import paid_card_payment

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]
HASH = "0x" + "cd" * 32
#: Routes open to anyone by design (each guards itself otherwise: a signature, a digest).
PUBLIC = {
    "home", "healthz", "readyz", "metrics", "api-schema", "api-docs", "payment-webhook",
    "receipts:verify",
}  # fmt: skip


def route_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns, namespace: str = "") -> None:  # type: ignore[no-untyped-def]
        for p in patterns:
            if isinstance(p, URLResolver):
                if str(p.pattern).startswith("admin/"):
                    continue
                ns = f"{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, ns)
            elif isinstance(p, URLPattern) and p.name:
                names.add(namespace + p.name.removesuffix("-slash"))

    walk(get_resolver().url_patterns)
    return names


def row_counts() -> dict[str, int]:
    """Rows of every table, but the security audit (a refusal is recorded there by design)."""
    return {
        m._meta.label: m._default_manager.count()
        for m in apps.get_models()
        if m is not SecurityEvent
    }


def only_refusals_recorded(before: int) -> None:
    kinds = set(SecurityEvent.objects.order_by("id")[before:].values_list("kind", flat=True))
    assert kinds <= {"permission_denied"}


@pytest.fixture
def world(buyer, seller):  # type: ignore[no-untyped-def]
    order = OrderFactory(buyer=buyer, seller=seller)
    payment = paid_card_payment(order)
    receipt, _ = receipt_issue_for_payment(payment_id=payment.id, actor=Actor.system())
    other_buyer = UserFactory(username="other-buyer")
    OrderFactory(buyer=other_buyer, seller=seller)  # a buyer, with an order of their own
    return {
        "order": order,
        "payment": payment,
        "receipt": receipt,
        "stranger": UserFactory(username="stranger"),
        "other_buyer": other_buyer,
        "staff": UserFactory(username="staff-no-perm", is_staff=True),
    }


def calls(w) -> list[tuple[str, str, dict | None]]:  # type: ignore[no-untyped-def]
    o, p, r = w["order"].id, w["payment"].id, w["receipt"].id
    return [
        ("GET", f"/api/orders/{o}", None),
        ("POST", f"/api/orders/{o}/payment-transactions", {"payment_method": "fiat"}),
        ("PUT", f"/api/orders/payment-transactions/{p}/status", {"status": "failed"}),
        ("GET", f"/api/orders/{o}/payment-status", None),
        ("POST", f"/api/orders/{o}/payment/retry", {}),
        ("POST", f"/api/orders/{o}/payment/refund", {"amount": "1.00"}),
        (
            "POST",
            "/api/orders/payment/monitor-blockchain",
            {"transaction_id": str(p), "transaction_hash": HASH},
        ),
        ("POST", f"/api/orders/{o}/confirm-delivery", {}),
        ("POST", f"/api/orders/{o}/dispute", {"reason": "never arrived"}),
        ("POST", f"/api/orders/{o}/resolve-dispute", {"buyer_amount": "50", "seller_amount": "50"}),
        ("GET", f"/api/receipts/{r}/pdf", None),
        ("GET", "/api/analytics/payments", None),
        ("GET", "/api/orders", None),
        ("POST", "/api/orders", {"seller_id": 1, "amount": "1.00", "currency": "USD"}),
        ("GET", "/api/sellers/me", None),
        ("POST", "/api/sellers/me", None),
    ]


def client_for(user) -> Client:  # type: ignore[no-untyped-def]
    if user is None:
        return Client()
    token = Token.objects.get_or_create(user=user)[0].key
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def send(client: Client, method: str, url: str, body: dict | None):  # type: ignore[no-untyped-def]
    data = "" if body is None else json.dumps(body)
    return client.generic(method, url, data, content_type="application/json")


#: (role, url name) -> the designed answer; the rest: anonymous 401, others 404.
DESIGNED = {
    # lists are scoped to the caller: an empty page, not an error
    **{(role, "api-orders"): 200 for role in ("stranger", "other_buyer", "staff")},
    # only staff read analytics; staff read every order (and its status)
    ("stranger", "receipts:analytics"): 403,
    ("other_buyer", "receipts:analytics"): 403,
    ("staff", "receipts:analytics"): 200,
    ("staff", "api-order"): 200,
    ("staff", "api-payment-status"): 200,
    ("staff", "receipts:pdf"): 200,
    # staff may act for the buyer (user_may_pay); this order is paid, so the services refuse
    ("staff", "api-payment-transactions"): 409,  # order_not_payable
    ("staff", "api-payment-retry"): 409,  # not_retryable
    ("staff", "api-payment-monitor-blockchain"): 400,  # not_a_chain_payment
    # a refund needs payments.refund_payment; delivery and disputes are the parties' own
    ("staff", "api-payment-refund"): 403,
    # statuses need payments.update_payment_status, arbitration payments.refund_payment
    ("staff", "api-payment-transaction-status"): 403,
    ("staff", "resolve-dispute"): 403,
    ("staff", "confirm-delivery"): 403,
    ("staff", "order-dispute"): 403,
    # nobody here has opted in to selling (404 for its profile); staff cannot opt in
    ("staff", "api-seller-me", "POST"): 403,
}

#: Calls any signed-in user may make for themselves (they write the caller's own rows).
OWN = {("POST", "api-orders"), ("POST", "api-seller-me")}


def test_every_endpoint_refuses_who_may_not_act_and_writes_nothing(world):
    w = world
    called = {resolve(url.split("?")[0]).view_name for _, url, _ in calls(w)}
    assert route_names() - PUBLIC - called == set(), "an endpoint this test does not call"

    roles = {"anonymous": None, **{k: w[k] for k in ("stranger", "other_buyer", "staff")}}
    clients = {role: client_for(user) for role, user in roles.items()}
    before, audited = row_counts(), SecurityEvent.objects.count()
    wrong = []
    for role, client in clients.items():
        for method, url, body in calls(w):
            name = resolve(url).view_name
            if role != "anonymous" and (method, name) in OWN and role != "staff":
                continue  # any signed-in user may open an order of their own, or sell
            if role == "staff" and (method, name) == ("POST", "api-orders"):
                continue
            expected = (
                401
                if role == "anonymous"
                else DESIGNED.get((role, name, method), DESIGNED.get((role, name), 404))
            )
            answer = send(client, method, url, body)
            if answer.status_code != expected:
                wrong.append((role, method, url, answer.status_code))
            elif role in ("stranger", "other_buyer") and name == "api-orders":
                assert answer.json()["count"] == 0 if role == "stranger" else 1
    assert wrong == [], "\n".join(map(str, wrong))
    assert row_counts() == before  # nothing written, whoever asked
    only_refusals_recorded(audited)


def test_staff_without_permissions_in_the_admin(world):
    staff, stranger = world["staff"], world["stranger"]
    staff_client, stranger_client, anonymous = Client(), Client(), Client()
    staff_client.force_login(staff)
    stranger_client.force_login(stranger)
    before, audited = row_counts(), SecurityEvent.objects.count()
    wrong = []
    for model in admin.site._registry:
        opts = model._meta
        base = f"/admin/{opts.app_label}/{opts.model_name}/"
        for url in (base, f"{base}add/"):
            # every staff member may read the payments list (read-only; its actions check
            # their own permissions): 200, and a POST without a permitted action changes nothing
            staff_answer = 200 if (model is PaymentTransaction and url == base) else 403
            for who, client, expected in (
                ("staff", staff_client, staff_answer),
                ("stranger", stranger_client, 302),
                ("anonymous", anonymous, 302),
            ):
                answer = client.get(url)
                if answer.status_code != expected:
                    wrong.append((who, "GET", url, answer.status_code))
                answer = client.post(url, {"action": "delete_selected", "_selected_action": []})
                if answer.status_code != expected:
                    wrong.append((who, "POST", url, answer.status_code))
    assert wrong == [], "\n".join(map(str, wrong))
    assert row_counts() == before
    only_refusals_recorded(audited)
