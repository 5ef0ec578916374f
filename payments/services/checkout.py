"""Checkout: an order with its first payment, and a new payment on an existing order. The rows
are written in one transaction; the provider is asked after the commit (a provider that fails
or does not answer leaves a payment the client can see, retry or cancel), and a transaction the
client already sent is claimed right away."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import transaction

from common.money import get_currency
from orders.audit import Actor
from orders.models import Order
from orders.services import order_create
from payments.models import PaymentTransaction
from payments.providers.base import ProviderResult
from payments.providers.registry import provider_for_method
from payments.services.payments import payment_claim_transaction, payment_create, payment_start


def _check_request(method: str, currency: str, details: dict[str, Any] | None) -> None:
    """A request that cannot succeed is a 400 before any row is written (no order left
    behind, no email, no attempt counted): an unknown or disabled method, or what the method's
    provider refuses up front (a currency or token its chain does not accept)."""
    provider = provider_for_method(method)
    check = getattr(provider, "check_request", None)
    if check is not None:
        check(get_currency(currency).code, details or {})


def _begin(
    payment: PaymentTransaction,
    actor: Actor,
    transaction_hash: str | None,
    chain_id: int | None,
) -> ProviderResult:
    result = payment_start(payment_id=payment.id, actor=actor)
    if transaction_hash:
        payment_claim_transaction(
            payment_id=payment.id, transaction_hash=transaction_hash, chain_id=chain_id, actor=actor
        )
    return result


def checkout_payment_open(
    *,
    order_id: UUID,
    method: str,
    actor: Actor,
    amount: Any = None,
    currency: str | None = None,
    details: dict[str, Any] | None = None,
    transaction_hash: str | None = None,
) -> tuple[PaymentTransaction, ProviderResult]:
    """A new payment on an order: recorded (committed), then opened with its provider."""
    order_currency = Order.objects.values_list("currency", flat=True).filter(pk=order_id).first()
    if order_currency is not None:
        _check_request(method, currency or order_currency, details)
    payment = payment_create(
        order_id=order_id,
        method=method,
        actor=actor,
        amount=amount,
        currency=currency,
        details=details,
    )
    result = _begin(payment, actor, transaction_hash, (details or {}).get("chain_id"))
    return payment, result


def checkout_order_create(
    *,
    buyer: Any,
    seller_id: Any,
    amount: Any,
    currency: str,
    actor: Actor,
    items: list[dict[str, Any]] | None = None,
    description: str = "",
    method: str | None = None,
    details: dict[str, Any] | None = None,
    transaction_hash: str | None = None,
    chain_id: int | None = None,
) -> tuple[Order, PaymentTransaction | None, ProviderResult | None]:
    """The order and (with ``method``) its first payment in one transaction; the provider is
    asked after that commit. Returns (order, payment, provider result)."""
    if method:
        _check_request(method, currency, details)
    with transaction.atomic(durable=True):
        order = order_create(
            buyer=buyer,
            seller_id=seller_id,
            amount=amount,
            currency=currency,
            items=items,
            description=description,
            actor=actor,
        )
        payment = (
            payment_create(order_id=order.id, method=method, actor=actor, details=details)
            if method
            else None
        )
    if payment is None:
        return order, None, None
    return order, payment, _begin(payment, actor, transaction_hash, chain_id)
