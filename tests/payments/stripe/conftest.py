from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from payments.providers.registry import get_provider
from payments.providers.stripe.client import sign_webhook_payload
from payments.webhooks.inbox import webhook_sources
from tests.peers.localstripe import SECRET_KEY, localstripe  # noqa: F401

WEBHOOK_SECRET = "whsec_orderpay_test_secret"
WEBHOOK_PATH = "/api/orders/payment/webhook"


def _clear_caches() -> None:
    get_provider.cache_clear()
    webhook_sources.cache_clear()


@pytest.fixture
def stripe_on(settings):
    """Card payments through Stripe (settings only; each test points STRIPE_API_BASE)."""
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "fiat": "stripe"}
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: a test must set it
    settings.STRIPE_TIMEOUT = 5
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_RECONCILE_GRACE_SECONDS = 0
    _clear_caches()
    yield settings
    _clear_caches()


@pytest.fixture
def stripe_local(stripe_on, localstripe):  # noqa: F811
    """Stripe settings pointing at the session's localstripe, emptied for this test."""
    localstripe.reset()
    stripe_on.STRIPE_API_BASE = localstripe.url
    return localstripe


def signed(payload: dict[str, Any] | str, secret: str = WEBHOOK_SECRET, **kw: Any):
    body = payload if isinstance(payload, str) else json.dumps(payload, indent=2)
    return body, sign_webhook_payload(body, secret, **kw)


def stripe_event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_test_{abs(hash((event_type, json.dumps(obj)))) % 10**12}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll until ``predicate()`` is truthy (a bounded wait for a callback, not a timing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what or predicate}")
        time.sleep(0.2)
