"""Platform operations on escrow payments: confirm delivery (buyer), open a dispute (buyer or
seller), resolve a dispute (staff, as the arbiter). Entry points only: read, call a service."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.audit import Actor
from orders.errors import DomainError
from orders.selectors import order_get_for_user

from .escrow_services import escrow_open_dispute, escrow_release, escrow_resolve


class Forbidden(DomainError):
    code = "permission_denied"
    http_status = 403


def _sent(tx: Any) -> dict[str, Any]:
    return {"transaction_hash": tx.transaction_hash, "purpose": tx.purpose, "status": tx.status}


class ConfirmDeliveryView(APIView):
    """The buyer confirms delivery: the escrow is released to the seller by the operator."""

    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        if order.buyer_id != request.user.pk:
            raise Forbidden("Only the buyer confirms delivery.", code="not_buyer")
        sent = escrow_release(order_id=order.id, actor=Actor.for_user(request.user))
        return Response({"order_id": str(order.id), "release": _sent(sent)}, status=202)


class DisputeInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class DisputeView(APIView):
    """The buyer or the seller opens a dispute on the order's escrow payment."""

    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        if request.user.pk not in (order.buyer_id, order.seller_id):
            raise Forbidden("Only the buyer or the seller opens a dispute.", code="not_a_party")
        data = DisputeInput(data=request.data)
        data.is_valid(raise_exception=True)
        out = escrow_open_dispute(
            order_id=order.id,
            actor=Actor.for_user(request.user),
            reason=data.validated_data.get("reason", ""),
        )
        return Response(
            {
                "order_id": str(order.id),
                "transaction_id": str(out["payment"].id),
                "status": out["payment"].status,
                "transaction_request": out["transaction_request"],
            },
            status=200,
        )


class ResolveInput(serializers.Serializer):
    buyer_amount = serializers.CharField(max_length=64)
    seller_amount = serializers.CharField(max_length=64)


class ResolveDisputeView(APIView):
    """Staff (the arbiter) split a disputed escrow between buyer and seller."""

    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        if not request.user.is_staff:
            raise Forbidden("Only staff resolve disputes.", code="not_arbiter")
        data = ResolveInput(data=request.data)
        data.is_valid(raise_exception=True)
        sent = escrow_resolve(
            order_id=order.id,
            buyer_amount=data.validated_data["buyer_amount"],
            seller_amount=data.validated_data["seller_amount"],
            actor=Actor.for_admin(request.user),
        )
        return Response(
            {"order_id": str(order.id), "transactions": [_sent(s) for s in sent]}, status=202
        )
