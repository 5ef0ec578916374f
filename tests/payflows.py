"""Payment flows driven through payments.services with the dummy provider (shared by the
receipts, notifications, back-office and browser tests)."""

from __future__ import annotations

from typing import Any

from orders.audit import Actor
from payments.models import PaymentTransaction
from payments.providers.base import Outcome, ProviderResult
from payments.services.payments import payment_apply_result, payment_create, payment_start

TX_HASH = "0x" + "ab" * 32


def start_payment(order: Any, *, method: str = "fiat", actor: Actor | None = None):
    actor = actor or Actor.for_user(order.buyer)
    payment = payment_create(order_id=order.id, method=method, actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    return PaymentTransaction.objects.get(pk=payment.id)


def confirm_payment(payment: PaymentTransaction, **fields: Any) -> PaymentTransaction:
    payment_apply_result(
        payment_id=payment.id,
        actor=Actor.for_webhook("dummy", f"evt_{payment.id.hex[:12]}"),
        result=ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded", fields=fields),
    )
    return PaymentTransaction.objects.get(pk=payment.id)


def fail_payment(payment: PaymentTransaction, **kwargs: Any) -> PaymentTransaction:
    payment_apply_result(
        payment_id=payment.id,
        actor=Actor.for_webhook("dummy", f"evt_f_{payment.id.hex[:12]}"),
        result=ProviderResult(
            Outcome.FAILED,
            raw_status="failed",
            error_code="card_declined",
            error_message="Your card was declined.",
            **kwargs,
        ),
    )
    return PaymentTransaction.objects.get(pk=payment.id)


def paid_card_payment(order: Any, pi: str = "pi_3TestIntent0001") -> PaymentTransaction:
    return confirm_payment(start_payment(order, method="fiat"), payment_intent_id=pi)


def paid_chain_payment(order: Any, tx_hash: str = TX_HASH, chain_id: int = 1):
    return confirm_payment(
        start_payment(order, method="crypto"),
        transaction_hash=tx_hash,
        chain_id=chain_id,
        confirmations=12,
        block_number=1234,
    )
