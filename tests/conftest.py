from __future__ import annotations

import pytest
from django.db import connection

from orders.audit import Actor
from payments.providers.dummy import DummyProvider
from tests.factories import OrderFactory, SellerFactory, UserFactory


def pytest_configure(config):  # type: ignore[no-untyped-def]
    """The live server sends each answer without Nagle's delay: it writes the status line,
    headers and body in separate small sends, and on a kept-alive connection (schemathesis,
    a requests Session) the second waited for the client's delayed ACK, 40 ms a request."""
    from django.core.servers.basehttp import WSGIRequestHandler

    WSGIRequestHandler.disable_nagle_algorithm = True


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Tests marked ``postgres`` skip, saying why, when the suite runs on SQLite."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL); running on SQLite")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _dummy_provider_reset():
    DummyProvider.reset()
    yield
    DummyProvider.reset()


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if cache.key_prefix and client is not None:
        # Redis: only this run's keys. FLUSHDB would also empty a parallel xdist worker's
        # throttle counters and cached answers halfway through its test.
        redis = client(write=True)
        keys = list(redis.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
        if keys:
            redis.delete(*keys)
    else:
        cache.clear()
    yield


@pytest.fixture
def buyer(db):
    return UserFactory(username="buyer")


@pytest.fixture
def seller(db):
    return SellerFactory(username="seller")


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", is_staff=True, is_superuser=True)


@pytest.fixture
def order(buyer, seller):
    return OrderFactory(buyer=buyer, seller=seller)


@pytest.fixture
def actor(buyer):
    return Actor.for_user(buyer)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"
