"""A provider with no outside peer, enabled only in test and local settings.

It answers ``pending`` on create and succeeds refunds; tests script other answers through
``DummyProvider.script`` (keyed by payment or refund id, or ``"*"`` for every call).
"""

from __future__ import annotations

from typing import Any, ClassVar

from payments.providers.base import (
    Outcome,
    PaymentData,
    ProviderError,
    ProviderResult,
    ProviderUnavailableError,
    RefundData,
)


class DummyProvider:
    name = "dummy"
    #: {(operation, id or "*"): ProviderResult | Exception}; tests set and clear it.
    script: ClassVar[dict[tuple[str, str], Any]] = {}
    calls: ClassVar[list[tuple[str, str]]] = []

    @classmethod
    def reset(cls) -> None:
        cls.script.clear()
        cls.calls.clear()

    def _answer(self, operation: str, key: str, default: ProviderResult) -> ProviderResult:
        self.calls.append((operation, key))
        scripted = self.script.get((operation, key), self.script.get((operation, "*")))
        if isinstance(scripted, Exception):
            raise scripted
        return scripted if scripted is not None else default

    def create_payment(self, payment: PaymentData) -> ProviderResult:
        return self._answer(
            "create",
            str(payment.payment_id),
            ProviderResult(
                Outcome.PENDING,
                reference=f"dummy_{payment.payment_id.hex}",
                raw_status="pending",
                instructions={
                    "provider": "dummy",
                    "amount": str(payment.amount),
                    "currency": payment.currency,
                },
            ),
        )

    def fetch_payment(self, payment: PaymentData) -> ProviderResult:
        return self._answer(
            "fetch", str(payment.payment_id), ProviderResult(Outcome.PENDING, raw_status="pending")
        )

    def cancel_payment(self, payment: PaymentData) -> ProviderResult:
        return self._answer(
            "cancel",
            str(payment.payment_id),
            ProviderResult(Outcome.CANCELLED, raw_status="canceled"),
        )

    def refund(self, refund: RefundData) -> ProviderResult:
        return self._answer(
            "refund",
            str(refund.refund_id),
            ProviderResult(
                Outcome.SUCCEEDED,
                reference=f"dummy_re_{refund.refund_id.hex}",
                raw_status="succeeded",
            ),
        )

    def fetch_refund(self, refund: RefundData) -> ProviderResult:
        return self._answer(
            "fetch_refund",
            str(refund.refund_id),
            ProviderResult(
                Outcome.SUCCEEDED, reference=refund.provider_reference or "", raw_status="succeeded"
            ),
        )

    def claim_transaction(
        self, payment: PaymentData, transaction_hash: str, chain_id: int | None
    ) -> ProviderResult:
        return self._answer(
            "claim",
            str(payment.payment_id),
            ProviderResult(
                Outcome.PROCESSING,
                reference=transaction_hash,
                raw_status="seen",
                fields={"transaction_hash": transaction_hash, "chain_id": chain_id},
            ),
        )


__all__ = ["DummyProvider", "ProviderError", "ProviderUnavailableError"]
