"""Reads on orders that enforce who may see what."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from common.errors import NotFound
from orders.models import Order


def order_list_for_user(user: Any, *, status: str | None = None) -> QuerySet[Order]:
    """The orders ``user`` may see: as buyer or seller; staff see all."""
    qs = Order.objects.select_related("buyer", "seller")
    if not user.is_staff:
        qs = qs.filter(Q(buyer=user) | Q(seller=user))
    if status:
        qs = qs.filter(status=status)
    return qs


def order_get_for_user(user: Any, order_id: UUID | str) -> Order:
    """The order if ``user`` may see it; otherwise ``NotFound``, never revealing that it exists."""
    try:
        return order_list_for_user(user).get(pk=order_id)
    except (Order.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("Order not found.", code="order_not_found") from None
