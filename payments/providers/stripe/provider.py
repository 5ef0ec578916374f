"""The Stripe PaymentIntents provider: our dataclasses in, ``ProviderResult`` out.

The PaymentIntent is the truth: every result is computed from a PaymentIntent (or refund)
as Stripe returned it, so creating, re-reading after a webhook and reconciling share one
mapping. The ``client_secret`` goes back to the caller in ``ProviderResult.client_secret``
only; it is never put in ``fields`` or ``data`` (nothing stores it); ``fetch_payment``
returns it again when the client needs it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from common.money import get_currency, to_base_units
from payments.providers.base import (
    FailureKind,
    Outcome,
    PaymentData,
    ProviderError,
    ProviderResult,
    RefundData,
)
from payments.providers.stripe.client import StripeGateway, failure_kind_for

#: PaymentIntent status -> our outcome (``requires_payment_method`` with a
#: ``last_payment_error`` is a failure: see ``payment_intent_result``).
PI_OUTCOMES = {
    "requires_payment_method": Outcome.PENDING,
    "requires_confirmation": Outcome.PENDING,
    "requires_action": Outcome.PENDING,
    "processing": Outcome.PROCESSING,
    "requires_capture": Outcome.PROCESSING,  # authorised, not captured (we capture automatically)
    "succeeded": Outcome.SUCCEEDED,
    "canceled": Outcome.CANCELLED,
}
REFUND_OUTCOMES = {
    "pending": Outcome.PENDING,
    "requires_action": Outcome.PENDING,
    "succeeded": Outcome.SUCCEEDED,
    "failed": Outcome.FAILED,
    "canceled": Outcome.CANCELLED,
}
#: Stripe's three-decimal currencies take minor units whose last digit is 0.
THREE_DECIMAL = 3


def stripe_amount(amount: Decimal, currency: str) -> int:
    """Minor units as Stripe expects them (JPY: yen; USD: cents; KWD: fils ending in 0).

    A three-decimal amount whose last digit is not 0 cannot be charged exactly; it is
    rejected (``currency_precision_unsupported``) rather than rounded, so the buyer is never
    charged an amount other than the order's.
    """
    cur = get_currency(currency)
    units = to_base_units(amount, cur)
    if cur.exponent == THREE_DECIMAL and units % 10:
        raise ProviderError(
            f"Stripe charges {cur.code} in steps of 0.010; {amount} cannot be charged exactly.",
            code="currency_precision_unsupported",
            kind=FailureKind.FINAL,
        )
    return units


def payment_metadata(payment: PaymentData) -> dict[str, str]:
    return {"order_id": str(payment.order_id), "payment_id": str(payment.payment_id)}


def payment_intent_result(pi: dict[str, Any], payment: PaymentData) -> ProviderResult:
    """Map a PaymentIntent to a result for ``payment`` (status, failure, checks)."""
    status = str(pi.get("status") or "")
    outcome = PI_OUTCOMES.get(status, Outcome.UNKNOWN)
    result = ProviderResult(
        outcome,
        reference=str(pi["id"]),
        raw_status=status,
        fields={"payment_intent_id": str(pi["id"])},
        client_secret=str(pi.get("client_secret") or ""),
        data={"stripe": {"payment_intent_status": status}},
    )
    error = pi.get("last_payment_error") or {}
    if error and status == "requires_payment_method":
        code = str(error.get("code") or "card_declined")
        decline = str(error.get("decline_code") or "")
        result.outcome = Outcome.FAILED
        result.failure_kind = failure_kind_for(code, decline)
        result.error_code = decline or code
        result.error_message = str(error.get("message") or "The payment failed.")
    if status == "canceled":
        result.failure_kind = FailureKind.FINAL
        result.error_code = str(pi.get("cancellation_reason") or "canceled")
    expected = stripe_amount(payment.amount, payment.currency)
    currency = str(pi.get("currency") or "").upper()
    if int(pi.get("amount") or 0) != expected or currency != payment.currency.upper():
        # Money other than the payment's: never confirmed. A succeeded PaymentIntent keeps the
        # payment processing, flagged, until staff settle it (refund it at Stripe, or ...).
        if result.outcome == Outcome.SUCCEEDED:
            result.outcome = Outcome.PROCESSING
            result.data["stripe"]["held_for_review"] = "amount_mismatch"
        result.review_flags.append(
            (
                "amount_mismatch",
                {
                    "payment_intent_id": str(pi["id"]),
                    "expected": expected,
                    "stripe_amount": pi.get("amount"),
                    "stripe_currency": currency,
                },
            )
        )
    owner = (pi.get("metadata") or {}).get("payment_id")
    if owner and owner != str(payment.payment_id):
        raise ProviderError(
            "The PaymentIntent belongs to another payment.", code="payment_intent_mismatch"
        )
    return result


def refund_result(refund: dict[str, Any]) -> ProviderResult:
    status = str(refund.get("status") or "")
    result = ProviderResult(
        REFUND_OUTCOMES.get(status, Outcome.UNKNOWN),
        reference=str(refund["id"]),
        raw_status=status,
    )
    if result.outcome in (Outcome.FAILED, Outcome.CANCELLED):
        result.error_code = str(refund.get("failure_reason") or status)
        result.error_message = f"Stripe reports the refund {status}"
    return result


class StripeProvider:
    name = "stripe"

    def __init__(self, gateway: StripeGateway | None = None) -> None:
        self._gateway = gateway

    @property
    def gateway(self) -> StripeGateway:
        # Built per call unless injected: settings (key, base, timeout) are read each time.
        return self._gateway or StripeGateway()

    # --- payments ---------------------------------------------------------------------------
    def find_payment_intent(self, payment: PaymentData) -> dict[str, Any] | None:
        """The PaymentIntent made for this payment, by id or else by its metadata."""
        gateway = self.gateway
        if payment.payment_intent_id:
            return gateway.retrieve_payment_intent(payment.payment_intent_id)
        found = gateway.find_payment_intents("payment_id", str(payment.payment_id))
        if not found:
            return None
        # Several can only exist where the provider ignored our idempotency key: keep the one
        # furthest along (succeeded first), then the oldest.
        rank = {"succeeded": 0, "processing": 1, "requires_capture": 1, "canceled": 9}
        found.sort(key=lambda pi: (rank.get(pi.get("status"), 5), pi.get("created") or 0))
        return found[0]

    def create_payment(self, payment: PaymentData) -> ProviderResult:
        amount = stripe_amount(payment.amount, payment.currency)
        pi = None
        if payment.payment_intent_id or payment.details.get("failure_kind") == "transient":
            # An earlier call's outcome is unknown: reconcile with Stripe before creating, so
            # that even a server ignoring idempotency keys never gets a second PaymentIntent.
            pi = self.find_payment_intent(payment)
        if pi is None:
            pi = self.gateway.create_payment_intent(
                {
                    "amount": amount,
                    "currency": payment.currency.lower(),
                    "payment_method_types": ["card"],
                    "metadata": payment_metadata(payment),
                },
                idempotency_key=payment.idempotency_key,
            )
        return payment_intent_result(pi, payment)

    def fetch_payment(self, payment: PaymentData) -> ProviderResult:
        pi = self.find_payment_intent(payment)
        if pi is None:
            # Nothing reached Stripe: the payment may be started again (same idempotency key).
            return ProviderResult(Outcome.PENDING, raw_status="not_found")
        return payment_intent_result(pi, payment)

    def cancel_payment(self, payment: PaymentData) -> ProviderResult:
        pi = self.find_payment_intent(payment)
        if pi is None:
            return ProviderResult(Outcome.CANCELLED, raw_status="not_found")
        if pi.get("status") not in ("succeeded", "processing", "canceled"):
            try:
                pi = self.gateway.cancel_payment_intent(str(pi["id"]))
            except ProviderError as exc:
                if exc.kind == FailureKind.TRANSIENT:
                    raise
                pi = self.gateway.retrieve_payment_intent(str(pi["id"]))  # moved meanwhile
        return payment_intent_result(pi, payment)

    def client_secret(self, payment: PaymentData) -> str:
        """The PaymentIntent's client_secret, fetched again from Stripe (never stored)."""
        return self.fetch_payment(payment).client_secret

    # --- refunds ----------------------------------------------------------------------------
    def refund(self, refund: RefundData) -> ProviderResult:
        payment = refund.payment
        if not payment.payment_intent_id:
            raise ProviderError("The payment has no PaymentIntent.", code="not_refundable")
        created = self.gateway.create_refund(
            {
                "payment_intent": payment.payment_intent_id,
                "amount": stripe_amount(refund.amount, refund.currency),
                "metadata": {
                    **payment_metadata(payment),
                    "refund_id": str(refund.refund_id),
                    "reason": refund.reason[:450],
                },
            },
            idempotency_key=refund.idempotency_key,
        )
        return refund_result(created)

    def find_refund(self, refund: RefundData) -> dict[str, Any] | None:
        if refund.provider_reference:
            return self.gateway.retrieve_refund(refund.provider_reference)
        if not refund.payment.payment_intent_id:
            return None
        for item in self.gateway.list_refunds(refund.payment.payment_intent_id):
            if (item.get("metadata") or {}).get("refund_id") == str(refund.refund_id):
                return item
        return None

    def fetch_refund(self, refund: RefundData) -> ProviderResult:
        found = self.find_refund(refund)
        if found is None:
            # Stripe holds no refund made for this row: the call never reached it.
            return ProviderResult(
                Outcome.FAILED,
                raw_status="not_found",
                error_code="refund_not_found",
                error_message="Stripe holds no refund for this request.",
            )
        return refund_result(found)

    def claim_transaction(
        self, payment: PaymentData, transaction_hash: str, chain_id: int | None
    ) -> ProviderResult:
        raise ProviderError("Card payments take no transaction hash.", code="not_a_chain_payment")
