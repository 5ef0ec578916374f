"""Links out of the platform: a transaction on its chain's explorer, a PaymentIntent on Stripe."""

from __future__ import annotations

from django.conf import settings

from payments.models import PaymentTransaction


def explorer_tx_url(chain_id: int | None, transaction_hash: str | None) -> str:
    """The explorer page of a transaction, or "" when the chain has no explorer configured."""
    if not chain_id or not transaction_hash:
        return ""
    base = getattr(settings, "EXPLORER_URLS", {}).get(int(chain_id), "")
    return f"{base.rstrip('/')}/tx/{transaction_hash}" if base else ""


def stripe_payment_url(payment_intent_id: str | None) -> str:
    base = getattr(settings, "STRIPE_DASHBOARD_URL", "")
    if not payment_intent_id or not base:
        return ""
    return f"{base.rstrip('/')}/payments/{payment_intent_id}"


def payment_provider_reference(payment: PaymentTransaction) -> tuple[str, str]:
    """(reference, url): the transaction hash or PaymentIntent id and where to look it up."""
    if payment.transaction_hash:
        return payment.transaction_hash, explorer_tx_url(payment.chain_id, payment.transaction_hash)
    if payment.payment_intent_id:
        return payment.payment_intent_id, stripe_payment_url(payment.payment_intent_id)
    if payment.escrow_id:
        return payment.escrow_id, ""
    return "", ""
