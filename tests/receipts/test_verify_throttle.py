"""Receipt verification is rate limited per caller: a rotating X-Forwarded-For makes no new
caller (NUM_PROXIES is 0 by default), and a signed-in user has a bucket of their own."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/receipts/verify"
QUERY = {"number": "RCPT-2030-000001", "sha256": "0" * 64}


@pytest.fixture
def low_rate(settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "receipt_verify": "5/minute"}
    cache.clear()


def statuses(client: APIClient, n: int, spoof: bool) -> list[int]:
    out = []
    for i in range(n):
        extra = {"HTTP_X_FORWARDED_FOR": f"203.0.113.{i}"} if spoof else {}
        out.append(client.get(URL, QUERY, **extra).status_code)
    return out


def test_rotating_forwarded_for_does_not_make_new_callers(low_rate):
    answers = statuses(APIClient(), 8, spoof=True)
    assert 429 not in answers[:5]
    assert answers[5:] == [429, 429, 429]


def test_signed_in_users_are_limited_too(low_rate):
    client = APIClient()
    client.force_authenticate(UserFactory())
    assert statuses(client, 7, spoof=False)[5:] == [429, 429]
