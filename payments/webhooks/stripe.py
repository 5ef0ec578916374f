"""Stripe webhooks: recognise, verify (Stripe's signature scheme), and process stored events.

Processing never trusts the event's copy of an object: it re-reads the PaymentIntent, refund
or dispute from Stripe and applies what Stripe holds now through the payment services, so a
duplicate or an event arriving out of order ends in Stripe's state, and the services refuse to
move a payment backwards from money received.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import Q

from common.errors import ValidationFailed
from orders.audit import Actor
from payments.models import PaymentTransaction, Refund
from payments.providers.stripe.client import (
    StripeGateway,
    WebhookSignatureInvalid,
    verify_webhook_signature,
)
from payments.providers.stripe.provider import payment_intent_result, refund_result
from payments.services.core import payment_data
from payments.services.disputes import payment_close_dispute, payment_open_dispute
from payments.services.payments import payment_apply_result
from payments.services.refunds import refund_apply_result
from payments.services.reviews import payment_flag_for_review
from payments.webhooks.inbox import VerifiedEvent, WebhookSignatureError

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Stripe-Signature"
TIMESTAMP_RE = re.compile(r"(?:^|,)\s*t=(\d{1,12})\s*(?:,|$)")
OPEN_DISPUTE = frozenset(
    {"warning_needs_response", "warning_under_review", "needs_response", "under_review"}
)
#: A closed dispute's status -> the outcome for ``payment_close_dispute``.
CLOSED_DISPUTE = {"won": "won", "warning_closed": "won", "lost": "lost"}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except (TypeError, ValueError):
        return None


class StripeWebhookSource:
    provider = "stripe"

    def __init__(self, gateway: StripeGateway | None = None) -> None:
        self._gateway = gateway

    @property
    def gateway(self) -> StripeGateway:
        return self._gateway or StripeGateway()

    # --- receiving --------------------------------------------------------------------------
    def matches(self, headers: Mapping[str, str]) -> bool:
        return _header(headers, SIGNATURE_HEADER) is not None

    def verify(self, body: bytes, headers: Mapping[str, str]) -> VerifiedEvent:
        secret = settings.STRIPE_WEBHOOK_SECRET
        if not secret:
            raise WebhookSignatureError(
                "Stripe webhooks are not configured.", code="webhook_not_configured"
            )
        header = _header(headers, SIGNATURE_HEADER) or ""
        if not header.isascii():  # Stripe's comparison raises TypeError on other characters
            raise WebhookSignatureError("The signature header is not ASCII.")
        stamp = TIMESTAMP_RE.search(header)
        if stamp is None:
            raise WebhookSignatureError("The signature header has no timestamp.")
        if int(stamp.group(1)) > time.time() + settings.STRIPE_WEBHOOK_FUTURE_SKEW:
            raise WebhookSignatureError(
                "The signature's timestamp is in the future.", code="signature_timestamp_future"
            )
        try:
            verify_webhook_signature(
                body, header, secret, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE
            )
        except WebhookSignatureInvalid as exc:
            message = str(exc)
            code = "signature_timestamp_stale" if "tolerance" in message else "invalid_signature"
            raise WebhookSignatureError(
                "The Stripe signature does not verify.", code=code
            ) from None
        try:
            payload = json.loads(body)
        except ValueError:
            raise ValidationFailed("The event is not JSON.", code="invalid_payload") from None
        if not (
            isinstance(payload, dict)
            and isinstance(payload.get("id"), str)
            and isinstance(payload.get("type"), str)
            and isinstance(payload.get("data"), dict)
            and isinstance(payload["data"].get("object"), dict)
        ):
            raise ValidationFailed("The event has no id, type or object.", code="invalid_payload")
        return VerifiedEvent(
            self.provider,
            payload["id"],
            payload["type"],
            payload,
            object_key=self.object_key(payload["type"], payload["data"]["object"]),
        )

    @staticmethod
    def object_key(event_type: str, obj: Mapping[str, Any]) -> str:
        """Every ``payment_intent.*`` event is settled by re-reading its PaymentIntent (the
        same ``sync_payment_intent``, whatever the type says), so one re-read covers all of
        them stored before it. Other events are processed one by one."""
        if event_type.startswith("payment_intent.") and isinstance(obj.get("id"), str):
            return f"payment_intent:{obj['id']}"
        return ""

    # --- processing -------------------------------------------------------------------------
    def process(self, event: Any) -> None:
        event_type: str = event.event_type
        obj: dict[str, Any] = event.payload["data"]["object"]
        actor = Actor.for_webhook(self.provider, event.event_id)
        details = {"event_type": event_type}
        if event_type.startswith("payment_intent."):
            self.sync_payment_intent(str(obj["id"]), actor=actor, details=details)
        elif event_type.startswith("charge.dispute."):
            self.sync_dispute(str(obj["id"]), actor=actor)
        elif event_type.startswith("refund.") or event_type == "charge.refund.updated":
            self.sync_refund(str(obj["id"]), actor=actor)
        elif event_type == "charge.refunded":
            pi_id = obj.get("payment_intent")
            if pi_id:
                self.sync_refunds(str(pi_id), actor=actor)
        else:
            logger.info("stripe event %s (%s) needs no action", event.event_id, event_type)

    def _payment_for(self, pi_id: str, metadata: Mapping[str, Any]) -> PaymentTransaction | None:
        query = Q(payment_intent_id=pi_id)
        owner = _uuid(metadata.get("payment_id"))
        if owner is not None:
            query |= Q(pk=owner)
        return (
            PaymentTransaction.objects.select_related("order", "order__buyer")
            .filter(query, provider="stripe")
            .first()
        )

    def sync_payment_intent(
        self, pi_id: str, *, actor: Actor, details: dict[str, Any] | None = None
    ) -> PaymentTransaction | None:
        pi = self.gateway.retrieve_payment_intent(pi_id)
        payment = self._payment_for(pi_id, pi.get("metadata") or {})
        if payment is None:
            logger.warning("stripe PaymentIntent %s matches no payment here", pi_id)
            return None
        if payment.payment_intent_id and payment.payment_intent_id != pi_id:
            # A second PaymentIntent for one payment (a provider that ignored our idempotency
            # key, or one made by hand): never apply it; staff look if it took money.
            if pi.get("status") in ("succeeded", "processing", "requires_capture"):
                payment_flag_for_review(
                    payment_id=payment.id,
                    reason="duplicate_payment_intent",
                    actor=actor,
                    details={"payment_intent_id": pi_id, "status": pi.get("status")},
                )
            return payment
        result = payment_intent_result(pi, payment_data(payment))
        return payment_apply_result(
            payment_id=payment.id, result=result, actor=actor, details=details
        )

    def _apply_refund(
        self, payment: PaymentTransaction, item: dict[str, Any], actor: Actor
    ) -> None:
        owner = _uuid((item.get("metadata") or {}).get("refund_id"))
        match = Q(provider_reference=item["id"])
        if owner is not None:
            match |= Q(pk=owner)
        local = Refund.objects.filter(match, payment=payment).first()
        if local is None:
            payment_flag_for_review(
                payment_id=payment.id,
                reason="refund_outside_orderpay",
                actor=actor,
                details={"stripe_refund_id": item["id"], "amount": item.get("amount")},
            )
            return
        refund_apply_result(refund_id=local.id, result=refund_result(item), actor=actor)

    def sync_refunds(self, pi_id: str, *, actor: Actor) -> None:
        payment = PaymentTransaction.objects.filter(payment_intent_id=pi_id).first()
        if payment is None:
            logger.warning("stripe refunds of %s match no payment here", pi_id)
            return
        for item in self.gateway.list_refunds(pi_id):
            self._apply_refund(payment, item, actor)

    def sync_refund(self, refund_id: str, *, actor: Actor) -> None:
        item = self.gateway.retrieve_refund(refund_id)
        pi_id = item.get("payment_intent")
        if not pi_id and item.get("charge"):
            pi_id = self.gateway.retrieve_charge(str(item["charge"])).get("payment_intent")
        payment = (
            PaymentTransaction.objects.filter(payment_intent_id=pi_id).first() if pi_id else None
        )
        if payment is None:
            logger.warning("stripe refund %s matches no payment here", refund_id)
            return
        self._apply_refund(payment, item, actor)

    def sync_dispute(self, dispute_id: str, *, actor: Actor) -> None:
        dispute = self.gateway.retrieve_dispute(dispute_id)
        pi_id = dispute.get("payment_intent")
        if not pi_id and dispute.get("charge"):
            pi_id = self.gateway.retrieve_charge(str(dispute["charge"])).get("payment_intent")
        payment = (
            PaymentTransaction.objects.filter(payment_intent_id=pi_id).first() if pi_id else None
        )
        if payment is None:
            logger.warning("stripe dispute %s matches no payment here", dispute_id)
            return
        status = str(dispute.get("status") or "")
        info = {
            "dispute_id": dispute_id,
            "dispute_status": status,
            "reason": dispute.get("reason"),
            "amount": dispute.get("amount"),
        }
        disputable = payment.status in ("confirmed", "completed", "partially_refunded")
        if status in OPEN_DISPUTE or status == "lost":
            if disputable:
                payment_open_dispute(payment_id=payment.id, actor=actor, details=info)
            elif payment.status != "disputed":
                payment_flag_for_review(
                    payment_id=payment.id, reason="dispute", actor=actor, details=info
                )
                return
        if status in CLOSED_DISPUTE:
            payment_close_dispute(
                payment_id=payment.id, actor=actor, outcome=CLOSED_DISPUTE[status], details=info
            )


__all__ = ["SIGNATURE_HEADER", "StripeWebhookSource"]
