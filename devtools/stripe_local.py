"""Local development against localstripe: register our webhook endpoint with it.

localstripe (a Stripe-compatible test server) takes webhook endpoints at
``POST /_config/webhooks/<id>`` with form fields ``url`` and ``secret``; it then signs every
event it sends with that secret, as Stripe does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def register_localstripe_webhook(
    api_base: str, url: str, secret: str, endpoint_id: str = "orderpay", timeout: float = 10
) -> None:
    if not api_base.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise ValueError("Only a localstripe on loopback takes a webhook registration here.")
    body = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    request = urllib.request.Request(  # noqa: S310 (loopback URL checked above)
        f"{api_base.rstrip('/')}/_config/webhooks/{urllib.parse.quote(endpoint_id)}",
        data=body,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read()


TEST_CARD = "4242424242424242"


def _localstripe_call(
    api_base: str, secret_key: str, path: str, fields: dict[str, str], timeout: float
) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (loopback URL checked by the caller)
        f"{api_base.rstrip('/')}{path}",
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Authorization": f"Bearer {secret_key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return dict(json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as exc:  # Stripe's error body, e.g. a declined card
        return dict(json.loads(exc.read() or b"{}"))


def confirm_with_test_card(
    api_base: str,
    secret_key: str,
    payment_intent_id: str,
    card_number: str = TEST_CARD,
    timeout: float = 10,
) -> dict[str, Any]:
    """What Stripe.js does in the buyer's browser, against a localstripe: make a card
    PaymentMethod, attach it to the PaymentIntent, confirm. (localstripe answers 500 to
    ``confirm`` with a ``payment_method``, so the card is attached by an update first.)
    The card number goes to localstripe only, never to orderpay."""
    if not api_base.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise ValueError("Only a localstripe on loopback is confirmed this way.")
    card = {
        "type": "card",
        "card[number]": card_number,
        "card[exp_month]": "12",
        "card[exp_year]": "2034",
        "card[cvc]": "123",
    }
    method = _localstripe_call(api_base, secret_key, "/v1/payment_methods", card, timeout)
    if "id" not in method:
        return method
    path = f"/v1/payment_intents/{urllib.parse.quote(payment_intent_id)}"
    updated = _localstripe_call(
        api_base, secret_key, path, {"payment_method": method["id"]}, timeout
    )
    if "error" in updated:
        return updated
    return _localstripe_call(api_base, secret_key, f"{path}/confirm", {}, timeout)
