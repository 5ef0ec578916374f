"""A webhook source for the tests: header ``X-Test-Signature: good`` verifies; any other
value is a bad signature. Processing records the event ids it saw."""

from __future__ import annotations

import json
from collections.abc import Mapping

from payments.webhooks.inbox import VerifiedEvent, WebhookSignatureError


class FakeSource:
    provider = "fake"
    processed: list[str] = []

    def matches(self, headers: Mapping[str, str]) -> bool:
        return "X-Test-Signature" in headers

    def verify(self, body: bytes, headers: Mapping[str, str]) -> VerifiedEvent:
        if headers["X-Test-Signature"] != "good":
            raise WebhookSignatureError("Bad signature.", code="invalid_signature")
        data = json.loads(body)
        return VerifiedEvent("fake", data["id"], data["type"], data)

    def process(self, event) -> None:  # type: ignore[no-untyped-def]
        FakeSource.processed.append(event.event_id)
