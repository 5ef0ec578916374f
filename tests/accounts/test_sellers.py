"""A user sells only after opting in (POST /api/sellers/me); staff cannot sell; an order naming
anyone else as seller gets the same answer whether or not the id exists."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import SellerProfile
from orders.models import Order
from tests.factories import SellerFactory, UserFactory

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client


def new_order(client: APIClient, seller_id: int):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/orders",
        {"seller_id": seller_id, "amount": "5.00", "currency": "USD"},
        format="json",
    )


def test_opting_in_is_idempotent_and_readable():
    user = UserFactory(username="maker")
    client = api(user)
    assert client.get("/api/sellers/me").json()["error"]["code"] == "seller_not_found"
    first = client.post("/api/sellers/me")
    again = client.post("/api/sellers/me/")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json() == client.get("/api/sellers/me").json()
    assert first.json()["user_id"] == user.pk
    assert SellerProfile.objects.filter(user=user).count() == 1


@pytest.mark.parametrize("flags", [{"is_staff": True}, {"is_superuser": True}])
def test_staff_cannot_sell(flags):
    user = UserFactory(username="staffer", **flags)
    r = api(user).post("/api/sellers/me")
    assert r.status_code == 403 and r.json()["error"]["code"] == "staff_cannot_sell"
    assert not SellerProfile.objects.exists()


def test_anonymous_cannot_opt_in():
    assert APIClient().post("/api/sellers/me").status_code == 401


def test_an_order_names_only_a_user_who_opted_in():
    buyer, maker = UserFactory(username="b"), UserFactory(username="maker")
    client = api(buyer)
    assert new_order(client, maker.pk).json()["error"]["code"] == "unknown_seller"
    api(maker).post("/api/sellers/me")
    r = new_order(client, maker.pk)
    assert r.status_code == 201 and r.json()["seller_id"] == maker.pk


def test_an_unusable_seller_looks_the_same_as_a_missing_one():
    buyer = UserFactory(username="b")
    plain = UserFactory(username="plain")
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    gone = SellerFactory(username="gone", is_active=False)
    promoted = SellerFactory(username="promoted")
    promoted.is_staff = True
    promoted.save()
    missing = max(plain.pk, admin.pk, gone.pk, promoted.pk) + 1000
    client = api(buyer)

    def answer(seller_id: int) -> tuple[int, str, str]:
        r = new_order(client, seller_id)
        body = r.json()["error"]
        assert body["details"] == {"seller_id": str(seller_id)}
        return r.status_code, body["code"], body["message"]

    answers = {answer(pk) for pk in (plain.pk, admin.pk, gone.pk, promoted.pk, missing)}
    assert answers == {(400, "unknown_seller", "Unknown seller.")}
    assert not Order.objects.exists()


def test_a_seller_buying_from_themselves_is_told_so():
    me = SellerFactory(username="me")
    assert new_order(api(me), me.pk).json()["error"]["code"] == "buyer_is_seller"
