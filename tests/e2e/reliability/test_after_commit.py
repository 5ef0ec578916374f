"""A request whose commit succeeded answers its success even when what follows the commit
fails (the cache that holds payment-status generations is down, a receiver breaks): the
effects have sweepers; a 500 would make the client retry and open a second order."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from orders.models import Order
from payments.models import PaymentTransaction
from payments.signals import order_payments_changed
from tests.peers.anvil import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cache_down():  # type: ignore[no-untyped-def]
    down = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        }
    }
    with override_settings(CACHES=down):  # Django's test signals reset the cache handler
        yield


def api(user):  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_order_committed_while_the_cache_is_down_is_201(buyer, seller, cache_down):
    r = api(buyer).post(
        "/api/orders", {"seller_id": seller.pk, "amount": "5.00", "currency": "USD"}, format="json"
    )
    assert r.status_code == 201, r.content
    assert Order.objects.filter(pk=r.json()["id"]).exists()


def test_a_failing_receiver_does_not_fail_the_committed_payment(buyer, seller, caplog):
    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("receiver bug")

    order_payments_changed.connect(broken, dispatch_uid="test-broken")
    try:
        r = api(buyer).post(
            "/api/orders",
            {"seller_id": seller.pk, "amount": "5.00", "currency": "USD", "payment_method": "fiat"},
            format="json",
        )
    finally:
        order_payments_changed.disconnect(dispatch_uid="test-broken")
    assert r.status_code == 201, r.content
    assert PaymentTransaction.objects.filter(order_id=r.json()["id"]).count() == 1
    assert "a receiver of a committed change failed" in caplog.text
