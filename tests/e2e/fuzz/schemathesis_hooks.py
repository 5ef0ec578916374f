"""Hooks for the schemathesis command-line runs (named in their config file).


A client sends a new Idempotency-Key for each request it means (the header's description
says so); the generator would repeat one value across different bodies, which the API rightly
answers 422 ``idempotency_key_reused``. A well-formed key is replaced by a fresh one before
each call; a malformed one is kept, so its 400 is still tested."""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import requests
import schemathesis

WELL_FORMED = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook("before_call")
def fresh_idempotency_key(context: Any, case: Any, kwargs: Any) -> None:
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and WELL_FORMED.match(key):
        headers["Idempotency-Key"] = uuid.uuid4().hex


#: Set by the test that starts the run: where the API is, and who the caller is.
FRESH_ORDERS = os.environ.get("ORDERPAY_FUZZ_BASE_URL")
STARTS_A_PAYMENT = "POST /api/orders/{order_id}/payment-transactions"


@schemathesis.hook("before_call")
def fresh_order_for_each_payment(context: Any, case: Any, kwargs: Any) -> None:
    """A payment is started once per order: the next start of the same order is 409
    ``payment_in_progress``. Each well-formed start gets a new order of its own (made through
    the API), so every phase reaches the payment logic, not only its first request."""
    if not FRESH_ORDERS or case.operation.label != STARTS_A_PAYMENT:
        return
    if case.path_parameters.get("order_id") != os.environ["ORDERPAY_FUZZ_OPEN_ORDER"]:
        return
    answer = requests.post(
        f"{FRESH_ORDERS}/api/orders",
        json={
            "seller_id": int(os.environ["ORDERPAY_FUZZ_SELLER"]),
            "amount": "10.00",
            "currency": "USD",
        },
        headers={"Authorization": f"Token {os.environ['ORDERPAY_FUZZ_TOKEN']}"},
        timeout=30,
    )
    answer.raise_for_status()
    case.path_parameters["order_id"] = answer.json()["id"]
