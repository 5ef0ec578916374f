"""Chain notification webhooks (a node provider's address-activity hooks).

Signed ``X-Chain-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with
``CHAIN_WEBHOOK_SECRET``. A valid one is only a hint: processing checks the named transaction
hashes on the node (``chain_check_transactions``); nothing in the body is trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from payments.chain.monitor import chain_check_transactions
from payments.models import WebhookEvent
from payments.providers.chain.registry import all_chains
from payments.webhooks.inbox import VerifiedEvent, WebhookSignatureError

HEADER = "X-Chain-Signature"
MAX_HASHES = 100


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _header(headers: Mapping[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() in (HEADER.lower(), "http_x_chain_signature"):
            return value
    return ""


def transaction_hashes(payload: dict[str, Any]) -> list[str]:
    """Hashes named by our format ({"chain_id", "transaction_hashes"}) or an activity list
    ({"event": {"activity": [{"hash": ...}]}})."""
    found = list(payload.get("transaction_hashes") or [])
    event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
    for item in event.get("activity") or []:
        if isinstance(item, dict) and item.get("hash"):
            found.append(item["hash"])
    out = []
    for h in found:
        if isinstance(h, str) and len(h) == 66 and h.startswith("0x"):
            out.append(h.lower())
    return sorted(set(out))[:MAX_HASHES]


class ChainWebhookSource:
    provider = "chain"

    def matches(self, headers: Mapping[str, str]) -> bool:
        return bool(_header(headers))

    def verify(self, body: bytes, headers: Mapping[str, str]) -> VerifiedEvent:
        secret = settings.CHAIN_WEBHOOK_SECRET
        if not secret:
            raise WebhookSignatureError("Chain webhooks are not enabled.", code="webhook_disabled")
        header = _header(headers)
        if not header.isascii():  # hmac.compare_digest raises TypeError on other characters
            raise WebhookSignatureError("Malformed signature header.")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            timestamp = int(parts.get("t", ""))
        except ValueError:
            raise WebhookSignatureError("Malformed signature header.") from None
        # in integers: a huge timestamp would overflow a float
        if abs(int(time.time()) - timestamp) > settings.CHAIN_WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookSignatureError("Stale signature.", code="stale_signature")
        expected = sign(body, secret, timestamp).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            raise WebhookSignatureError("Bad signature.")
        try:
            payload = json.loads(body)
        except ValueError:
            raise WebhookSignatureError("The body is not JSON.", code="malformed_payload") from None
        if not isinstance(payload, dict):
            raise WebhookSignatureError("The body is not an object.", code="malformed_payload")
        return VerifiedEvent(
            provider=self.provider,
            event_id=str(payload.get("id") or hashlib.sha256(body).hexdigest()),
            event_type=str(payload.get("type") or "address_activity"),
            payload=payload,
        )

    def process(self, event: WebhookEvent) -> None:
        payload = event.payload
        hashes = transaction_hashes(payload)
        chain_ids = [c.chain_id for c in all_chains()]
        named = payload.get("chain_id")
        if named is not None and str(named).isdigit() and int(named) in chain_ids:
            chain_ids = [int(named)]
        for chain_id in chain_ids:
            chain_check_transactions(chain_id, hashes)
