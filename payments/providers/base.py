"""The provider protocol: what every payment provider takes and returns.

Adapters take and return these plain dataclasses, never models, so a provider can be tested
without the database and swapped without touching services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID


class Outcome(StrEnum):
    PENDING = "pending"  # waiting for the payer (requires payment method / action)
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # the call's outcome could not be learnt (timeout, 5xx)


class FailureKind(StrEnum):
    """How a failure may be retried (the retry policy keys on this)."""

    NONE = ""
    TRANSIENT = "transient"  # timeout, 5xx, RPC error: retry with backoff
    NEEDS_BUYER = "needs_buyer"  # declined, insufficient funds, wrong amount: ask the buyer
    FINAL = "final"  # fraud, cancelled: never retried


#: The raw status of a claim that binds nothing: the claimed transaction does not pay the
#: payment (a payment bound on chain is paid only by what names it). Nothing is recorded.
NOT_BOUND = "not_bound"


@dataclass(frozen=True)
class PaymentData:
    payment_id: UUID
    order_id: UUID
    method: str
    amount: Decimal
    currency: str
    idempotency_key: str
    buyer_id: int | None = None
    seller_id: int | None = None
    buyer_email: str = ""
    payment_intent_id: str | None = None
    chain_id: int | None = None
    transaction_hash: str | None = None
    token_address: str = ""
    pay_to_address: str = ""
    amount_base_units: int | None = None
    escrow_id: str | None = None
    chain_payment_id: str | None = None
    contract_address: str = ""
    sender_address: str = ""
    expires_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: when the payment was recorded (a chain transaction mined before it cannot pay it)
    created_at: datetime | None = None


@dataclass(frozen=True)
class RefundData:
    refund_id: UUID
    payment: PaymentData
    amount: Decimal
    currency: str
    idempotency_key: str
    reason: str = ""
    provider_reference: str | None = None


@dataclass(frozen=True)
class SendRequest:
    """A transaction a chain provider asks the platform to send (providers never write): the
    service records it, signs it and broadcasts it after the commit."""

    chain_id: int
    private_key: str
    to: str
    data: str = "0x"
    value: int = 0
    purpose: str = ""  # what it is for: "refund", "payout", "release", "resolve"

    def __repr__(self) -> str:  # never the key, in logs or tracebacks
        return f"SendRequest(chain_id={self.chain_id}, to={self.to!r}, purpose={self.purpose!r})"


@dataclass
class ProviderResult:
    """What a provider says about a payment or refund."""

    outcome: Outcome
    reference: str = ""  # PaymentIntent id, refund id, transaction hash
    raw_status: str = ""
    failure_kind: FailureKind = FailureKind.NONE
    error_code: str = ""
    error_message: str = ""
    #: Model fields to store on the payment (chain id, addresses, base units, block, ...).
    fields: dict[str, Any] = field(default_factory=dict)
    #: Given to the client once and never stored in clear (e.g. Stripe's client_secret).
    client_secret: str = ""
    #: What the payer must do (crypto: chain, asset, amount, transaction requests).
    instructions: dict[str, Any] = field(default_factory=dict)
    #: Reasons for staff review (amount mismatch, late payment, ...), with their details.
    review_flags: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    #: A transaction for the service to record and send (chain refunds).
    send: SendRequest | None = None


class ProviderError(Exception):
    """A provider refused or failed a call in a way that is known (no money moved)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "provider_error",
        kind: FailureKind = FailureKind.FINAL,
        http_status: int = 400,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind
        self.http_status = http_status


class ProviderUnavailableError(ProviderError):
    """A timeout, connection error or 5xx: the call's outcome is unknown."""

    def __init__(self, message: str, *, code: str = "provider_unavailable") -> None:
        super().__init__(message, code=code, kind=FailureKind.TRANSIENT, http_status=502)


class PaymentProvider(Protocol):
    name: str

    def create_payment(self, payment: PaymentData) -> ProviderResult: ...

    def fetch_payment(self, payment: PaymentData) -> ProviderResult:
        """Re-read the payment's state from the provider: the truth for webhooks and reconcile."""
        ...

    def cancel_payment(self, payment: PaymentData) -> ProviderResult: ...

    def refund(self, refund: RefundData) -> ProviderResult: ...

    def fetch_refund(self, refund: RefundData) -> ProviderResult: ...

    def claim_transaction(
        self, payment: PaymentData, transaction_hash: str, chain_id: int | None
    ) -> ProviderResult:
        """Chain providers: verify that ``transaction_hash`` pays ``payment``."""
        ...
