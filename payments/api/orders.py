"""The order endpoints of the client API: orders with their payments, and payment-status (with
the order's receipts, read through the loader the settings name); the OpenAPI hooks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Prefetch
from django.utils.module_loading import import_string
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from common.api import DECIMAL_SCHEMA, ApiView, DecimalStringField, error_responses
from common.money import format_amount
from orders.api import (
    OrderCreateInputSerializer,
    OrderListQuerySerializer,
    OrderPagination,
    OrderSerializer,
)
from orders.models import Order
from orders.selectors import order_get_for_user, order_list_for_user
from payments.api.idempotency import IDEMPOTENCY_PARAMETER, IDEMPOTENT_POST_ERRORS, idempotent
from payments.api.payments import (
    PROVIDER_REJECTED_422,
    payment_created_response,
    request_actor,
)
from payments.api.serializers import (
    OrderCreateWithPaymentFields,
    TransactionCreatedSerializer,
    TransactionSerializer,
)
from payments.api.throttling import OrderPaymentThrottle
from payments.models import PaymentTransaction
from payments.selectors import (
    order_outstanding_amount,
    order_paid_total,
    payment_status_cached,
    payment_status_for_order,
    user_may_pay,
    user_may_refund,
)
from payments.services.checkout import checkout_order_create

# --- orders ---------------------------------------------------------------------------------


class OrderOutputSerializer(OrderSerializer):
    """An order as the list shows it, with its latest payment's method and status."""

    payment_method = serializers.SerializerMethodField()
    payment_status = serializers.SerializerMethodField()
    total_paid = serializers.SerializerMethodField()
    outstanding_amount = serializers.SerializerMethodField()

    def _latest(self, order: Order) -> PaymentTransaction | None:
        payments = list(order.payments.all())
        return payments[-1] if payments else None

    def get_payment_method(self, order: Order) -> str | None:
        latest = self._latest(order)
        return latest.method if latest else None

    def get_payment_status(self, order: Order) -> str | None:
        latest = self._latest(order)
        return latest.status if latest else None

    @extend_schema_field(DECIMAL_SCHEMA)
    def get_total_paid(self, order: Order) -> str:
        return format_amount(order_paid_total(order.payments.all()), order.currency)

    @extend_schema_field(DECIMAL_SCHEMA)
    def get_outstanding_amount(self, order: Order) -> str:
        return format_amount(
            max(order_outstanding_amount(order, order.payments.all()), Decimal(0)), order.currency
        )


class OrderDetailSerializer(OrderOutputSerializer):
    transactions = TransactionSerializer(source="payments.all", many=True, read_only=True)


class OrderCreatedSerializer(OrderDetailSerializer):
    transaction = TransactionCreatedSerializer(
        read_only=True,
        allow_null=True,
        help_text="The first payment, when the request named a payment_method.",
    )


class OrderCreateRequestSerializer(OrderCreateWithPaymentFields, OrderCreateInputSerializer):
    pass


class OrderPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = OrderOutputSerializer(many=True)


def _with_payments(qs: Any) -> Any:
    return qs.prefetch_related(
        Prefetch("payments", queryset=PaymentTransaction.objects.order_by("created_at"))
    )


class OrderListCreateView(ApiView):
    throttle_classes = [OrderPaymentThrottle]

    @extend_schema(
        tags=["orders"],
        operation_id="orders_list",
        summary="The caller's orders (as buyer or seller; staff: all), newest first",
        parameters=[
            OpenApiParameter(
                "status", str, enum=[c for c, _ in Order._meta.get_field("status").choices]
            ),
            OpenApiParameter("role", str, enum=["buyer", "seller"]),
            OpenApiParameter("page", {"type": "integer", "minimum": 1, "maximum": 10**6}),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": 10**6},
                description="At most API_MAX_PAGE_SIZE (100): a larger one gives that many.",
            ),
        ],
        responses={200: OrderPageSerializer, **error_responses(400, 404)},
    )
    def get(self, request: Request) -> Response:
        query = OrderListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        qs = order_list_for_user(request.user, status=query.validated_data.get("status"))
        role = query.validated_data.get("role")
        if role == "buyer":
            qs = qs.filter(buyer=request.user)
        elif role == "seller":
            qs = qs.filter(seller=request.user)
        paginator = OrderPagination()
        page = paginator.paginate_queryset(_with_payments(qs), request, view=self)
        data = OrderOutputSerializer(page, many=True).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        tags=["orders"],
        operation_id="orders_create",
        summary="Create an order as its buyer, optionally with its first payment",
        description="With `payment_method`, the order and its first payment are written in one "
        "database transaction; the provider is asked after the commit, and `transaction` holds "
        "the payment with its `client_secret` (card) or `payment_instructions` (crypto).",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=OrderCreateRequestSerializer,
        responses={
            201: OrderCreatedSerializer,
            **error_responses(
                *IDEMPOTENT_POST_ERRORS,
                429,
                502,
                e400="`unknown_seller`, `buyer_is_seller`, `invalid_amount`, `unknown_currency`, "
                "`unknown_method`, field errors, ...",
                e409="`idempotency_key_in_use`.",
                e422=PROVIDER_REJECTED_422,
            ),
        },
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = OrderCreateRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        actor = request_actor(request)
        method = v.get("payment_method")
        order, payment, result = checkout_order_create(
            buyer=request.user,
            seller_id=v["seller_id"],
            amount=v["amount"],
            currency=v["currency"],
            items=v["items"],
            description=v["description"],
            actor=actor,
            method=method,
            details=data.method_details() if method else None,
            transaction_hash=v.get("transaction_hash"),
            chain_id=v.get("chain_id"),
        )
        order = _with_payments(Order.objects.all()).get(pk=order.pk)
        body = OrderDetailSerializer(order).data
        body["transaction"] = (
            payment_created_response(payment, result).data if payment is not None else None
        )
        return Response(body, status=status.HTTP_201_CREATED)


class OrderDetailView(ApiView):
    @extend_schema(
        tags=["orders"],
        operation_id="orders_retrieve",
        summary="One order with its payment transactions",
        responses={200: OrderDetailSerializer, **error_responses(404)},
    )
    def get(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        order = _with_payments(Order.objects.all()).get(pk=order.pk)
        return Response(OrderDetailSerializer(order).data)


# --- payment status -------------------------------------------------------------------------
def _order_receipts(order_id: Any) -> list[dict[str, Any]]:
    """The order's receipts, from the loader the settings name (receipts builds on payments,
    so payments reads them through this hook, never by importing receipts)."""
    return import_string(settings.PAYMENT_STATUS_RECEIPTS_LOADER)(order_id=order_id)


class ReceiptSummarySerializer(serializers.Serializer):
    """One of ``receipts.selectors.receipt_summaries``, as plain JSON data (what is cached)."""

    id = serializers.UUIDField()
    number = serializers.CharField()
    kind = serializers.ChoiceField(choices=[("receipt", "Receipt"), ("credit_note", "Credit note")])
    amount = DecimalStringField()
    currency = serializers.CharField()
    issued_at = serializers.DateTimeField()


class ReceiptLinkSerializer(ReceiptSummarySerializer):
    """A receipt as payment-status shows it, with its absolute download URL."""

    url = serializers.URLField(help_text="Where the PDF is downloaded (same authorisation).")


class PaymentStatusSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    order_status = serializers.CharField()
    payment_method = serializers.CharField(allow_null=True, help_text="The latest attempt's.")
    payment_status = serializers.CharField(allow_null=True, help_text="The latest attempt's.")
    currency = serializers.CharField()
    amount = DecimalStringField()
    total_paid = DecimalStringField()
    total_refunded = DecimalStringField()
    outstanding_amount = DecimalStringField()
    can_retry = serializers.BooleanField(help_text="Whether POST payment/retry would be accepted.")
    can_refund = serializers.BooleanField(
        help_text="Whether POST payment/refund would be accepted from the caller."
    )
    transactions = TransactionSerializer(many=True)
    receipts = ReceiptLinkSerializer(many=True)


def _payment_status_payload(order: Order) -> dict[str, Any]:
    """What every caller is shown of an order's payments, as plain JSON data: cached per order
    generation. The caller's own permissions and the request's host are applied on each read."""
    view = payment_status_for_order(order, receipts_loader=_order_receipts)
    latest = view.payments[-1] if view.payments else None
    cur = order.currency
    return {
        "payment_method": latest.method if latest else None,
        "payment_status": latest.status if latest else None,
        "total_paid": format_amount(view.total_paid, cur),
        "total_refunded": format_amount(view.total_refunded, cur),
        "outstanding_amount": format_amount(view.outstanding_amount, cur),
        "retryable": view.retryable,
        "refundable": view.refundable,
        "transactions": TransactionSerializer(view.payments, many=True).data,
        "receipts": [
            {**ReceiptSummarySerializer(r).data, "pdf_url": r["pdf_url"]} for r in view.receipts
        ],
    }


class PaymentStatusView(ApiView):
    @extend_schema(
        tags=["payments"],
        operation_id="payment_status",
        summary="An order's payment status: attempts, totals, what may be done, receipts",
        responses={200: PaymentStatusSerializer, **error_responses(404)},
    )
    def get(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        data = payment_status_cached(order.id, lambda: _payment_status_payload(order))
        receipts = []
        for summary in data["receipts"]:
            pdf_url = summary.pop("pdf_url")
            receipts.append({**summary, "url": request.build_absolute_uri(pdf_url)})
        body = {
            "order_id": str(order.id),
            "order_status": order.status,
            "payment_method": data["payment_method"],
            "payment_status": data["payment_status"],
            "currency": order.currency,
            "amount": format_amount(order.amount, order.currency),
            "total_paid": data["total_paid"],
            "total_refunded": data["total_refunded"],
            "outstanding_amount": data["outstanding_amount"],
            "can_retry": data["retryable"] and user_may_pay(request.user, order),
            "can_refund": data["refundable"] and user_may_refund(request.user, order),
            "transactions": data["transactions"],
            "receipts": receipts,
        }
        return Response(body)
