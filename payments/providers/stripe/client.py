"""The one module that imports ``stripe``: a thin gateway returning plain dicts.

Every call goes through :class:`StripeGateway`, which translates the SDK's errors into the
provider errors of ``payments.providers.base``: timeouts, connection errors, rate limits and
5xx become ``ProviderUnavailableError`` (the outcome is unknown), everything else a
``ProviderError`` carrying Stripe's code. The secret key is read from settings and never
logged or put in an error message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import stripe
from django.conf import settings

from payments.providers.base import FailureKind, ProviderError, ProviderUnavailableError

logger = logging.getLogger(__name__)

#: Stripe's own API when STRIPE_API_BASE is unset.
DEFAULT_API_BASE = stripe.DEFAULT_API_BASE


class WebhookSignatureInvalid(Exception):
    """The Stripe-Signature header does not verify (missing, malformed, wrong, stale)."""


@dataclass(frozen=True)
class StripeConfig:
    secret_key: str
    api_base: str
    timeout: float
    max_network_retries: int

    def __repr__(self) -> str:  # never show the key
        return f"StripeConfig(api_base={self.api_base!r}, timeout={self.timeout})"


def stripe_config() -> StripeConfig:
    return StripeConfig(
        secret_key=settings.STRIPE_SECRET_KEY,
        api_base=(settings.STRIPE_API_BASE or DEFAULT_API_BASE).rstrip("/"),
        timeout=float(settings.STRIPE_TIMEOUT),
        max_network_retries=int(settings.STRIPE_MAX_NETWORK_RETRIES),
    )


@lru_cache(maxsize=8)
def _sdk_client(config: StripeConfig) -> stripe.StripeClient:
    return stripe.StripeClient(
        config.secret_key,
        base_addresses={"api": config.api_base},
        max_network_retries=config.max_network_retries,
        http_client=stripe.RequestsClient(timeout=config.timeout),
    )


def _translate(exc: stripe.StripeError, operation: str) -> ProviderError:
    status = getattr(exc, "http_status", None)
    code = getattr(exc, "code", None) or ""
    message = getattr(exc, "user_message", None) or str(getattr(exc, "_message", "")) or ""
    if isinstance(exc, stripe.APIConnectionError):
        return ProviderUnavailableError(f"Stripe could not be reached ({operation}).")
    if isinstance(exc, stripe.RateLimitError | stripe.APIError) or (status or 0) >= 500:
        return ProviderUnavailableError(f"Stripe failed to answer ({operation}, HTTP {status}).")
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        # Our configuration, not the buyer: nothing was done; keep the outcome open.
        return ProviderUnavailableError(f"Stripe refused our credentials ({operation}).")
    if isinstance(exc, stripe.CardError):
        error = getattr(exc, "error", None)
        decline = getattr(error, "decline_code", None) or ""
        return ProviderError(
            message or "The card was declined.",
            code=code or "card_declined",
            kind=failure_kind_for(code, decline),
            http_status=402,
        )
    return ProviderError(
        message or f"Stripe rejected the request ({operation}).",
        code=f"stripe_{code}" if code else "stripe_invalid_request",
        kind=FailureKind.FINAL,
        http_status=status if status and 400 <= status < 500 else 400,
    )


#: Decline codes Stripe uses for cards that must never be retried.
FINAL_DECLINES = frozenset(
    {"fraudulent", "stolen_card", "lost_card", "pickup_card", "merchant_blacklist"}
)


def failure_kind_for(code: str, decline_code: str = "") -> FailureKind:
    if decline_code in FINAL_DECLINES or code in FINAL_DECLINES:
        return FailureKind.FINAL
    return FailureKind.NEEDS_BUYER


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class StripeGateway:
    """The Stripe calls orderpay makes; each returns plain dicts."""

    def __init__(self, config: StripeConfig | None = None) -> None:
        self.config = config or stripe_config()
        if not self.config.secret_key:
            raise ProviderError(
                "Stripe is not configured (STRIPE_SECRET_KEY is empty).",
                code="provider_not_configured",
                kind=FailureKind.TRANSIENT,  # our configuration: the buyer may try again later
            )
        self._v1 = _sdk_client(self.config).v1

    def _call(self, operation: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            error = _translate(exc, operation)
            logger.warning(
                "stripe %s failed: %s (HTTP %s, request %s)",
                operation,
                type(exc).__name__,
                getattr(exc, "http_status", None),
                getattr(exc, "request_id", None),
            )
            raise error from None

    # --- PaymentIntents ---------------------------------------------------------------------
    def create_payment_intent(self, params: dict[str, Any], idempotency_key: str) -> dict:
        return _plain(
            self._call(
                "create_payment_intent",
                self._v1.payment_intents.create,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        )

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict:
        return _plain(
            self._call(
                "retrieve_payment_intent",
                self._v1.payment_intents.retrieve,
                payment_intent_id,
            )
        )

    def cancel_payment_intent(self, payment_intent_id: str) -> dict:
        return _plain(
            self._call(
                "cancel_payment_intent",
                self._v1.payment_intents.cancel,
                payment_intent_id,
            )
        )

    def find_payment_intents(self, metadata_key: str, value: str, max_scan: int = 5000) -> list:
        """PaymentIntents whose metadata ``metadata_key`` equals ``value``.

        Stripe's search API first (eventually consistent: a very new PaymentIntent may be
        missing, which the idempotency key covers on Stripe); where search is unavailable
        (a region without it, or a local Stripe-compatible server), a bounded scan of the list.
        """
        try:
            found = self._v1.payment_intents.search(
                params={"query": f"metadata['{metadata_key}']:'{value}'", "limit": 10}
            )
            return [_plain(pi) for pi in found.data]
        except stripe.InvalidRequestError:
            pass  # no search API here: scan the list
        except stripe.StripeError as exc:
            raise _translate(exc, "search_payment_intents") from None
        matches: list[dict] = []
        for scanned, pi in enumerate(self._iterate(self._v1.payment_intents.list, {})):
            if scanned >= max_scan:
                break
            if (pi.get("metadata") or {}).get(metadata_key) == value:
                matches.append(pi)
        return matches

    def _iterate(self, list_fn: Any, params: dict[str, Any]) -> Iterator[dict]:
        starting_after = None
        while True:
            page_params = {**params, "limit": 100}
            if starting_after:
                page_params["starting_after"] = starting_after
            page = self._call("list", list_fn, params=page_params)
            items = [_plain(item) for item in page.data]
            yield from items
            if not page.has_more or not items:
                return
            starting_after = items[-1]["id"]

    # --- charges, refunds, disputes ---------------------------------------------------------
    def retrieve_charge(self, charge_id: str) -> dict:
        return _plain(self._call("retrieve_charge", self._v1.charges.retrieve, charge_id))

    def create_refund(self, params: dict[str, Any], idempotency_key: str) -> dict:
        return _plain(
            self._call(
                "create_refund",
                self._v1.refunds.create,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        )

    def retrieve_refund(self, refund_id: str) -> dict:
        return _plain(self._call("retrieve_refund", self._v1.refunds.retrieve, refund_id))

    def list_refunds(self, payment_intent_id: str) -> list[dict]:
        return list(self._iterate(self._v1.refunds.list, {"payment_intent": payment_intent_id}))

    def retrieve_dispute(self, dispute_id: str) -> dict:
        return _plain(self._call("retrieve_dispute", self._v1.disputes.retrieve, dispute_id))


def verify_webhook_signature(body: bytes, header: str | None, secret: str, tolerance: int) -> None:
    """Stripe's own scheme (``t=..,v1=HMAC-SHA256(secret, "t.body")``), with its tolerance
    for stale timestamps. Raises :class:`WebhookSignatureInvalid`."""
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureInvalid(str(getattr(exc, "_message", "")) or "invalid") from None
    except UnicodeDecodeError:
        raise WebhookSignatureInvalid("The body is not UTF-8.") from None


def sign_webhook_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for ``payload`` (local tooling and tests)."""
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
