"""Platform operations on escrow payments: confirm delivery (buyer), open a dispute (buyer or
seller), resolve a dispute (staff holding the refund permission, as the arbiter).

Entry points only, built like the rest of the client API (``payments.api``): authenticated,
others' orders are 404, JSON bodies (an empty body is fine where nothing is required), the
``Idempotency-Key`` header, throttling where money moves, and the one error format.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from common.api import DECIMAL_SCHEMA, AmountInputField, ApiView, StrictSerializer, error_responses
from orders.selectors import order_get_for_user
from payments.api.idempotency import IDEMPOTENCY_PARAMETER, IDEMPOTENT_POST_ERRORS, idempotent
from payments.api.payments import deny, request_actor
from payments.api.throttling import PaymentRateThrottle
from payments.models import ChainTransaction, PaymentStatus
from payments.selectors import staff_may_refund
from payments.services.escrow import escrow_open_dispute, escrow_release, escrow_resolve

TAG = "escrow"
_ERRORS = (*IDEMPOTENT_POST_ERRORS, 403, 404)


# --- shapes ---------------------------------------------------------------------------------
class SentTransactionSerializer(serializers.Serializer):
    """A transaction the platform sent (tracked to its confirmations by the chain monitor)."""

    transaction_hash = serializers.CharField()
    purpose = serializers.ChoiceField(choices=ChainTransaction.Purpose.choices)
    status = serializers.ChoiceField(choices=ChainTransaction.Status.choices)


class TransactionRequestSerializer(serializers.Serializer):
    """A ready transaction for the caller's wallet (as in ``payment_instructions``)."""

    to = serializers.CharField()
    value = serializers.CharField(help_text="Wei, as a decimal string.")
    value_hex = serializers.CharField()
    data = serializers.CharField(help_text="Call data, hex.")
    description = serializers.CharField()


class ConfirmDeliveryResultSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    release = SentTransactionSerializer()


class DisputeInputSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class DisputeResultSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    transaction_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=PaymentStatus.choices)
    transaction_request = TransactionRequestSerializer(
        help_text="The contract's `dispute` call: send it from the buyer's or the seller's "
        "wallet to open the dispute on chain too."
    )


@extend_schema_field(
    {**DECIMAL_SCHEMA, "description": "A decimal string; 0 allowed, at most the decimals."}
)
class SplitAmountField(AmountInputField):
    """One side of a split (zero allowed; the service checks the sum)."""


class ResolveInputSerializer(StrictSerializer):
    buyer_amount = SplitAmountField(help_text="Returned to the buyer.")
    seller_amount = SplitAmountField(help_text="Paid to the seller.")


class ResolveResultSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    transactions = SentTransactionSerializer(many=True)


# --- views ----------------------------------------------------------------------------------
class ConfirmDeliveryView(ApiView):
    throttle_classes = [PaymentRateThrottle]
    throttle_scope = "payments"

    @extend_schema(
        tags=[TAG],
        operation_id="escrow_confirm_delivery",
        summary="The buyer confirms delivery: the escrow is released to the seller",
        description="No body. The platform's operator key sends the contract's `release`; the "
        "payment completes when the monitor sees the release final.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=None,
        responses={
            202: ConfirmDeliveryResultSerializer,
            **error_responses(
                *_ERRORS,
                429,
                502,
                e403="`not_buyer`.",
                e409="`no_escrow_payment`, `release_in_progress`, `operator_key_missing`, "
                "`transaction_would_revert`, `idempotency_key_in_use`.",
            ),
        },
    )
    @idempotent
    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        if order.buyer_id != request.user.pk:
            raise deny("Only the buyer confirms delivery.", code="not_buyer")
        sent = escrow_release(order_id=order.id, actor=request_actor(request))
        body = {"order_id": order.id, "release": sent}
        return Response(ConfirmDeliveryResultSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class DisputeView(ApiView):
    @extend_schema(
        tags=[TAG],
        operation_id="escrow_dispute",
        summary="The buyer or the seller opens a dispute on the order's escrow payment",
        description="Freezes the payment and the order at once; the answer carries the "
        "contract call that opens the dispute on chain. The body may be empty.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=DisputeInputSerializer,
        responses={
            200: DisputeResultSerializer,
            **error_responses(
                *_ERRORS,
                e403="`not_a_party`.",
                e409="`no_escrow_payment`, `invalid_transition`, `idempotency_key_in_use`.",
            ),
        },
    )
    @idempotent
    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        if request.user.pk not in (order.buyer_id, order.seller_id):
            raise deny("Only the buyer or the seller opens a dispute.", code="not_a_party")
        data = DisputeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        out: dict[str, Any] = escrow_open_dispute(
            order_id=order.id, actor=request_actor(request), reason=data.validated_data["reason"]
        )
        body = {
            "order_id": order.id,
            "transaction_id": out["payment"].id,
            "status": out["payment"].status,
            "transaction_request": out["transaction_request"],
        }
        return Response(DisputeResultSerializer(body).data)


class ResolveDisputeView(ApiView):
    throttle_classes = [PaymentRateThrottle]
    throttle_scope = "payment_refund"

    @extend_schema(
        tags=[TAG],
        operation_id="escrow_resolve_dispute",
        summary="Split a disputed escrow between buyer and seller (staff, as the arbiter)",
        description="Staff holding `payments.refund_payment`. The two parts must add up to what "
        "the escrow still holds. Disputed on chain: the contract's `resolve`; disputed only "
        "here: the operator refunds the buyer's part and releases the rest.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=ResolveInputSerializer,
        responses={
            202: ResolveResultSerializer,
            **error_responses(
                *_ERRORS,
                429,
                502,
                e400="`split_mismatch`, `invalid_amount`, field errors, ...",
                e403="`not_arbiter`.",
                e409="`no_escrow_payment`, `operator_key_missing`, `transaction_would_revert`, "
                "`idempotency_key_in_use`.",
            ),
        },
    )
    @idempotent
    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        if not staff_may_refund(request.user):
            raise deny("Only staff with the refund permission resolve disputes.", "not_arbiter")
        data = ResolveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sent = escrow_resolve(
            order_id=order.id,
            buyer_amount=data.validated_data["buyer_amount"],
            seller_amount=data.validated_data["seller_amount"],
            actor=request_actor(request, admin=True),
        )
        body = {"order_id": order.id, "transactions": sent}
        return Response(ResolveResultSerializer(body).data, status=status.HTTP_202_ACCEPTED)


__all__ = ["ConfirmDeliveryView", "DisputeView", "ResolveDisputeView"]
