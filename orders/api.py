"""The orders part of the client API: input and output shapes for orders and their pagination
(the views are in ``payments.api.orders``: an order's representation shows its payments)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination

from common.api import (
    MAX_DB_INT,
    AmountInputField,
    CurrencyInputField,
    MoneyField,
    StrictSerializer,
)
from orders.models import OrderStatus
from orders.services import MAX_ITEMS


class OrderPagination(PageNumberPagination):
    """``?page=N&page_size=M`` (at most ``API_MAX_PAGE_SIZE``)."""

    page_size_query_param = "page_size"

    @property
    def page_size(self) -> int:  # type: ignore[override]
        return settings.API_PAGE_SIZE

    @property
    def max_page_size(self) -> int:  # type: ignore[override]
        return settings.API_MAX_PAGE_SIZE


class OrderItemSerializer(StrictSerializer):
    """One line of an order: what was bought, for the parties' and support's reference."""

    sku = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
        required=False,
        help_text="The seller's stock code: letters, digits and . _ / - (at most 64).",
    )
    name = serializers.RegexField(
        r"\S", max_length=200, required=False, help_text="Not only spaces (they are trimmed)."
    )
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, default=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if not attrs.get("sku") and not attrs.get("name"):
            raise serializers.ValidationError(
                {"sku": [serializers.ErrorDetail("Give sku or name.", code="required")]}
            )
        return attrs


class OrderCreateInputSerializer(StrictSerializer):
    seller_id = serializers.IntegerField(min_value=1, max_value=MAX_DB_INT)
    amount = AmountInputField()
    currency = CurrencyInputField()
    items = serializers.ListField(
        child=OrderItemSerializer(), required=False, max_length=MAX_ITEMS, default=list
    )
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=500, default=""
    )


class OrderListQuerySerializer(StrictSerializer):
    json_types = False
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    role = serializers.ChoiceField(choices=["buyer", "seller"], required=False)
    page = serializers.IntegerField(min_value=1, max_value=10**6, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=10**6, required=False)


class OrderSerializer(serializers.Serializer):
    """An order's own fields (payment fields are added by the API's composition)."""

    id = serializers.UUIDField(read_only=True)
    buyer_id = serializers.IntegerField(read_only=True)
    seller_id = serializers.IntegerField(read_only=True)
    amount = MoneyField()
    currency = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    items = OrderItemSerializer(many=True, read_only=True)
    status = serializers.ChoiceField(choices=OrderStatus.choices, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    paid_at = serializers.DateTimeField(read_only=True, allow_null=True)
    shipped_at = serializers.DateTimeField(read_only=True, allow_null=True)
    delivered_at = serializers.DateTimeField(read_only=True, allow_null=True)
    completed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    cancelled_at = serializers.DateTimeField(read_only=True, allow_null=True)
