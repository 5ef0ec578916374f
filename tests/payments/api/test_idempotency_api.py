"""Idempotency-Key: replay, reuse, in-flight, release, cleanup, and 20 parallel requests."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.models import SellerProfile
from orders.models import Order
from payments.api.idempotency import request_fingerprint
from payments.models import IdempotencyKey, PaymentTransaction
from payments.providers.base import Outcome, ProviderResult
from payments.providers.dummy import DummyProvider
from payments.services.expiry import idempotency_keys_cleanup
from tests.dbfaults import terminate_this_connection
from tests.payments.api.conftest import error_code

pytestmark = pytest.mark.django_db


def order_body(seller, **extra):
    return {"seller_id": seller.pk, "amount": "10.00", "currency": "USD", **extra}


def test_same_key_same_body_replays_byte_for_byte(buyer_api, seller):
    DummyProvider.script[("create", "*")] = ProviderResult(
        Outcome.PENDING, client_secret="pi_1_secret_2"
    )
    body = order_body(seller, payment_method="fiat")
    first = buyer_api.post_json("/api/orders", body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201
    # Same content, other key order and spacing: the same request.
    raw = json.dumps(dict(reversed(list(body.items()))), indent=2)
    again = buyer_api.generic("POST", "/api/orders/", raw, HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201 and again.content == first.content
    assert again["Content-Type"] == first["Content-Type"]
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1 and PaymentTransaction.objects.count() == 1
    stored = IdempotencyKey.objects.get()
    assert b"pi_1_secret_2" not in bytes(stored.response_body)  # kept encrypted


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_answer_lost_with_the_connection_after_the_commit_is_still_kept(
    buyer_api, seller, monkeypatch
):
    from payments.api import idempotency

    original = idempotency._fernet

    def connection_dropped():  # type: ignore[no-untyped-def]
        terminate_this_connection()  # the order has committed; its answer is being kept
        return original()

    monkeypatch.setattr(idempotency, "_fernet", connection_dropped)
    body = order_body(seller, payment_method="fiat")
    first = buyer_api.post_json("/api/orders", body, HTTP_IDEMPOTENCY_KEY="k-dropped")
    assert first.status_code == 201
    monkeypatch.undo()
    again = buyer_api.post_json("/api/orders", body, HTTP_IDEMPOTENCY_KEY="k-dropped")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert Order.objects.count() == 1


def test_same_key_other_body_is_422(buyer_api, seller):
    buyer_api.post_json("/api/orders", order_body(seller), HTTP_IDEMPOTENCY_KEY="k-2")
    r = buyer_api.post_json(
        "/api/orders", order_body(seller, amount="11"), HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert r.status_code == 422 and error_code(r) == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_keys_are_per_user(api_for, buyer, seller, order):
    SellerProfile.objects.create(user=buyer)  # each sells to the other
    api_for(buyer).post_json("/api/orders", order_body(seller), HTTP_IDEMPOTENCY_KEY="shared")
    r = api_for(seller).post_json("/api/orders", order_body(buyer), HTTP_IDEMPOTENCY_KEY="shared")
    assert r.status_code == 201 and Order.objects.count() == 3


@override_settings(IDEMPOTENCY_WAIT_SECONDS=0)
def test_key_in_flight_is_409(buyer_api, buyer, seller):
    body = order_body(seller)
    IdempotencyKey.objects.create(
        user=buyer,
        key="k-3",
        method="POST",
        path="/api/orders",
        request_hash=request_fingerprint("POST", "/api/orders", json.dumps(body).encode()),
    )
    r = buyer_api.post_json("/api/orders", body, HTTP_IDEMPOTENCY_KEY="k-3")
    assert r.status_code == 409 and error_code(r) == "idempotency_key_in_use"
    assert Order.objects.count() == 0


@override_settings(IDEMPOTENCY_LOCK_SECONDS=60)
def test_abandoned_key_is_taken_over(buyer_api, buyer, seller):
    body = order_body(seller)
    IdempotencyKey.objects.create(
        user=buyer,
        key="k-4",
        method="POST",
        path="/api/orders",
        request_hash=request_fingerprint("POST", "/api/orders", json.dumps(body).encode()),
        created_at=timezone.now() - timedelta(minutes=5),
    )
    r = buyer_api.post_json("/api/orders", body, HTTP_IDEMPOTENCY_KEY="k-4")
    assert r.status_code == 201


def test_a_refused_request_releases_its_key(buyer_api, seller):
    r = buyer_api.post_json(
        "/api/orders", order_body(seller, amount="-1"), HTTP_IDEMPOTENCY_KEY="k-5"
    )
    assert r.status_code == 400 and not IdempotencyKey.objects.exists()
    r = buyer_api.post_json("/api/orders", order_body(seller), HTTP_IDEMPOTENCY_KEY="k-5")
    assert r.status_code == 201


def test_a_conflict_is_kept_and_replayed(buyer_api, paid_order):
    url = f"/api/orders/{paid_order.id}/payment/retry"
    first = buyer_api.post_json(url, {}, HTTP_IDEMPOTENCY_KEY="k-6")
    assert first.status_code == 409
    again = buyer_api.post_json(url, {}, HTTP_IDEMPOTENCY_KEY="k-6")
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"


def test_key_format_is_checked(buyer_api, seller):
    for bad in ("", "x" * 256, "with space", "ümlaut"):
        r = buyer_api.post_json("/api/orders", order_body(seller), HTTP_IDEMPOTENCY_KEY=bad)
        assert r.status_code == 400 and error_code(r) == "invalid_idempotency_key"


def test_cleanup_keeps_keys_for_24_hours(buyer):
    now = timezone.now()
    for i, age in enumerate([timedelta(hours=1), timedelta(hours=23), timedelta(hours=25)]):
        IdempotencyKey.objects.create(
            user=buyer,
            key=f"c{i}",
            method="POST",
            path="/x",
            request_hash="h",
            created_at=now - age,
        )
    from payments.tasks import cleanup_idempotency_keys

    assert cleanup_idempotency_keys.name == "payments.cleanup_idempotency_keys"
    assert cleanup_idempotency_keys.delay().get() == 1
    assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == ["c0", "c1"]
    assert idempotency_keys_cleanup(older_than=timedelta(minutes=30)) == 2


def _post(url, token, body, key):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers["Content-Type"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(IDEMPOTENCY_WAIT_SECONDS=60)
def test_twenty_parallel_identical_requests_have_one_effect(live_server, buyer, seller):
    token = Token.objects.create(user=buyer).key
    DummyProvider.script[("create", "*")] = ProviderResult(
        Outcome.PENDING, client_secret="pi_par_secret"
    )
    body = order_body(seller, payment_method="fiat")
    results: list = []
    barrier = threading.Barrier(20)

    def run():
        barrier.wait()
        results.append(_post(f"{live_server.url}/api/orders", token, body, "parallel-1"))

    threads = [threading.Thread(target=run) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    assert {r[0] for r in results} == {201}
    assert len({r[1] for r in results}) == 1 and len({r[2] for r in results}) == 1
    assert Order.objects.count() == 1 and PaymentTransaction.objects.count() == 1
    assert ("create", str(PaymentTransaction.objects.get().id)) in DummyProvider.calls
    assert len([c for c in DummyProvider.calls if c[0] == "create"]) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(IDEMPOTENCY_WAIT_SECONDS=0)
def test_second_request_while_first_runs_is_409(live_server, buyer, seller, monkeypatch):
    token = Token.objects.create(user=buyer).key
    entered, release = threading.Event(), threading.Event()
    original = DummyProvider.create_payment

    def slow(self, payment):
        entered.set()
        release.wait(30)
        return original(self, payment)

    monkeypatch.setattr(DummyProvider, "create_payment", slow)
    body = order_body(seller, payment_method="fiat")
    first: list = []
    thread = threading.Thread(
        target=lambda: first.append(_post(f"{live_server.url}/api/orders", token, body, "busy"))
    )
    thread.start()
    assert entered.wait(30)
    status, content, _ = _post(f"{live_server.url}/api/orders", token, body, "busy")
    release.set()
    thread.join()
    assert status == 409 and json.loads(content)["error"]["code"] == "idempotency_key_in_use"
    assert first[0][0] == 201 and Order.objects.count() == 1


@pytest.mark.parametrize("path", ["/api/orders", "payment"])
def test_a_provider_refusal_after_the_commit_is_kept_and_replayed(buyer_api, seller, order, path):
    """The payment (and the order) committed before the provider refused: the 422 is kept, so
    the same key replays it instead of writing a second order or payment."""
    from payments.providers.base import FailureKind, ProviderError

    DummyProvider.script[("create", "*")] = ProviderError(
        "declined", code="card_declined", kind=FailureKind.NEEDS_BUYER
    )
    if path == "payment":
        url, body = f"/api/orders/{order.id}/payment-transactions", {"payment_method": "fiat"}
    else:
        url, body = path, order_body(seller, payment_method="fiat")
    orders, payments = Order.objects.count(), PaymentTransaction.objects.count()
    first = buyer_api.post_json(url, body, HTTP_IDEMPOTENCY_KEY="k-refused")
    assert first.status_code == 422 and error_code(first) == "card_declined"
    assert PaymentTransaction.objects.count() == payments + 1
    DummyProvider.script.clear()  # the provider would accept now: a new write would succeed
    again = buyer_api.post_json(url, body, HTTP_IDEMPOTENCY_KEY="k-refused")
    assert again.status_code == 422 and again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == orders + (path == "/api/orders")
    assert PaymentTransaction.objects.count() == payments + 1
