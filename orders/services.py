"""Writes on orders. Each service is one transaction; nothing here knows about payments."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.services import seller_for_order
from common.errors import NotFound, ValidationFailed
from common.money import check_maximum, get_currency, parse_amount
from orders.audit import Actor, apply_transition, record_event
from orders.models import Order

MAX_ITEMS = 100


def order_create(
    *,
    buyer: Any,
    seller_id: Any,
    amount: Any,
    currency: str,
    actor: Actor,
    items: list[dict[str, Any]] | None = None,
    description: str = "",
) -> Order:
    cur = get_currency(currency)
    value: Decimal = parse_amount(amount, cur)
    check_maximum(value, cur)
    items = items or []
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise ValidationFailed(
            f"items must be a list of at most {MAX_ITEMS}.", code="invalid_items"
        )
    if str(seller_id) == str(buyer.pk):
        raise ValidationFailed("A buyer cannot buy from themselves.", code="buyer_is_seller")
    seller = seller_for_order(seller_id)
    with transaction.atomic():
        order = Order.objects.create(
            buyer=buyer,
            seller=seller,
            amount=value,
            currency=cur.code,
            items=items,
            description=description[:500],
        )
        record_event(
            order_id=order.id,
            entity="order",
            action="create",
            actor=actor,
            to_state=order.status,
            details={"amount": str(value), "currency": cur.code},
        )
    return order


def order_lock(order_id: UUID) -> Order:
    """The order, locked for update in the caller's transaction."""
    try:
        return Order.objects.select_for_update().get(pk=order_id)
    except (Order.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("Order not found.", code="order_not_found") from None


def order_transition(
    *, order_id: UUID, name: str, actor: Actor, details: dict[str, Any] | None = None
) -> Order:
    """Run a fulfilment transition (ship, deliver, complete, cancel) on the order."""
    with transaction.atomic():
        order = order_lock(order_id)
        apply_transition(
            order, name, actor=actor, order_id=order.id, entity="order", details=details
        )
    return order


def order_mark_shipped(*, order_id: UUID, actor: Actor) -> Order:
    return order_transition(order_id=order_id, name="ship", actor=actor)


def order_mark_delivered(*, order_id: UUID, actor: Actor) -> Order:
    return order_transition(order_id=order_id, name="deliver", actor=actor)


def order_cancel(*, order_id: UUID, actor: Actor, reason: str = "") -> Order:
    return order_transition(
        order_id=order_id,
        name="cancel",
        actor=actor,
        details={"reason": reason} if reason else None,
    )
