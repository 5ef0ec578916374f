"""Payment endpoints of the client API. Each view reads input, authorises the object (others'
objects are 404), calls one service (a provider call follows the commit of its row), and
answers in the one format."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from common.api import ApiView, error_responses
from common.errors import NotFound
from orders.audit import Actor
from orders.selectors import order_get_for_user
from payments.api.idempotency import IDEMPOTENCY_PARAMETER, IDEMPOTENT_POST_ERRORS, idempotent
from payments.api.serializers import (
    MonitorInputSerializer,
    MonitorResultSerializer,
    PaymentCreateInputSerializer,
    PaymentRetryInputSerializer,
    PaymentStatusUpdateInputSerializer,
    RefundInputSerializer,
    RefundSerializer,
    TransactionCreatedSerializer,
    TransactionSerializer,
)
from payments.api.throttling import PaymentRateThrottle
from payments.models import PaymentTransaction
from payments.providers.base import ProviderResult
from payments.selectors import (
    payment_get_for_user,
    user_may_pay,
    user_may_refund,
    user_may_update_status,
)
from payments.services.checkout import checkout_payment_open
from payments.services.payments import (
    payment_claim_transaction,
    payment_retry_start,
    payment_set_status,
)
from payments.services.refunds import payment_refund

TAG = "payments"
#: The 422 of an endpoint whose provider call follows the commit of its row.
PROVIDER_REJECTED_422 = (
    "`idempotency_key_reused`; or the provider refused after the payment or refund was "
    "written: the provider's own code (e.g. `card_declined`, `wrong_recipient`), with "
    "`details.transaction_id` or `details.refund_id`. Kept for the Idempotency-Key: a retry "
    "with the same key replays it and writes nothing."
)


def request_actor(request: Request, *, admin: bool = False) -> Actor:
    """The user behind a request (``admin``: acting as staff), with the request's id (or
    Idempotency-Key) as reference."""
    # the request id the middleware checked (and logs use); a raw header is never stored
    reference = getattr(request._request, "request_id", "") or request.META.get(
        "HTTP_IDEMPOTENCY_KEY", ""
    )
    make = Actor.for_admin if admin else Actor.for_user
    return make(request.user, reference=str(reference)[:255])


def deny(message: str, code: str = "permission_denied") -> exceptions.PermissionDenied:
    """403 in the one error format (``code`` names why); audited as a security event."""
    return exceptions.PermissionDenied(message, code=code)


def payment_created_response(
    payment: PaymentTransaction, result: ProviderResult | None
) -> Response:
    payment = PaymentTransaction.objects.get(pk=payment.pk)
    body = TransactionCreatedSerializer(payment, context={"provider_result": result}).data
    return Response(body, status=status.HTTP_201_CREATED)


class PaymentTransactionCreateView(ApiView):
    throttle_classes = [PaymentRateThrottle]
    throttle_scope = "payments"

    @extend_schema(
        tags=[TAG],
        operation_id="payment_transactions_create",
        summary="Start a payment for an order (buyer or staff)",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=PaymentCreateInputSerializer,
        responses={
            201: TransactionCreatedSerializer,
            **error_responses(
                *IDEMPOTENT_POST_ERRORS,
                403,
                404,
                429,
                502,
                e422=PROVIDER_REJECTED_422,
                e409="`order_not_payable`, `payment_in_progress`, `nothing_outstanding`, "
                "`amount_exceeds_outstanding`, `currency_mismatch`, "
                "`transaction_hash_already_used`, `idempotency_key_in_use`.",
            ),
        },
    )
    @idempotent
    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        if not user_may_pay(request.user, order):
            raise deny("Only the buyer pays for an order.")
        data = PaymentCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        payment, result = checkout_payment_open(
            order_id=order.id,
            method=v["payment_method"],
            actor=request_actor(request),
            amount=v.get("amount"),
            currency=v.get("currency"),
            details=data.method_details(),
            transaction_hash=v.get("transaction_hash"),
        )
        return payment_created_response(payment, result)


class PaymentStatusUpdateView(ApiView):
    @extend_schema(
        tags=[TAG],
        operation_id="payment_transaction_status_update",
        summary="Set a payment's status (holders of payments.update_payment_status); "
        "`cancelled` cancels with the provider first; `confirmed`, `failed` and `expired` of "
        "an open card or chain payment are its provider's (409 `status_owned_by_provider`)",
        description="`cancelled` is sent to the provider first (a PaymentIntent is cancelled "
        "so it can no longer be confirmed); the answer shows the state the provider reported. "
        "An open payment backed by a provider (Stripe, chain, escrow) becomes `confirmed`, "
        "`failed` or `expired` only through that provider (verification, finality, webhooks): "
        "409 `status_owned_by_provider`.",
        request=PaymentStatusUpdateInputSerializer,
        responses={
            200: TransactionSerializer,
            **error_responses(
                400,
                403,
                404,
                409,
                413,
                415,
                422,
                502,
                e409="`invalid_transition`: no legal transition; `status_owned_by_provider`.",
                e422="The provider refused the cancellation (its own code).",
            ),
        },
    )
    def put(self, request: Request, transaction_id: str) -> Response:
        payment = payment_get_for_user(request.user, transaction_id)
        if not user_may_update_status(request.user):
            raise deny("Setting a payment's status needs payments.update_payment_status.")
        data = PaymentStatusUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        payment = payment_set_status(
            payment_id=payment.id,
            status=v["status"],
            reason=v["reason"],
            details=v["details"],
            actor=request_actor(request),
        )
        payment = PaymentTransaction.objects.get(pk=payment.pk)
        return Response(TransactionSerializer(payment).data)


class PaymentRetryView(ApiView):
    throttle_classes = [PaymentRateThrottle]
    throttle_scope = "payment_retry"

    @extend_schema(
        tags=[TAG],
        operation_id="payment_retry",
        summary="Retry a failed, expired or cancelled payment, optionally by another method",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=PaymentRetryInputSerializer,
        responses={
            201: TransactionCreatedSerializer,
            **error_responses(
                *IDEMPOTENT_POST_ERRORS,
                403,
                404,
                429,
                502,
                e422=PROVIDER_REJECTED_422,
                e409="`not_retryable`, `idempotency_key_in_use`.",
            ),
        },
    )
    @idempotent
    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        if not user_may_pay(request.user, order):
            raise deny("Only the buyer retries a payment.")
        data = PaymentRetryInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payment, result = payment_retry_start(
            order_id=order.id,
            actor=request_actor(request),
            method=data.validated_data.get("payment_method"),
            details={k: v for k, v in data.validated_data.items() if k == "payer_address" and v},
        )
        return payment_created_response(payment, result)


class PaymentRefundView(ApiView):
    throttle_classes = [PaymentRateThrottle]
    throttle_scope = "payment_refund"

    @extend_schema(
        tags=[TAG],
        operation_id="payment_refund",
        summary="Refund all or part of what was paid (the seller, or staff with the permission)",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=RefundInputSerializer,
        responses={
            201: RefundSerializer,
            **error_responses(
                *IDEMPOTENT_POST_ERRORS,
                403,
                404,
                429,
                502,
                e422=PROVIDER_REJECTED_422,
                e409="`refund_exceeds_paid`, `not_refundable`, `idempotency_key_in_use`.",
            ),
        },
    )
    @idempotent
    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_for_user(request.user, order_id)
        if not user_may_refund(request.user, order):
            raise deny("Only the seller or staff with the refund permission refund.")
        data = RefundInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        refund = payment_refund(
            order_id=order.id,
            actor=request_actor(request),
            amount=v.get("amount"),
            reason=v["reason"],
            payment_id=v.get("transaction_id"),
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


class MonitorBlockchainView(ApiView):
    throttle_classes = [PaymentRateThrottle]
    throttle_scope = "payments"

    @extend_schema(
        tags=[TAG],
        operation_id="payment_monitor_blockchain",
        summary="Report the on-chain transaction that pays a crypto or escrow payment",
        description="Claims the transaction for the payment and verifies it; answers 202 with "
        "the payment's status and its confirmations so far. The chain monitor keeps counting "
        "confirmations; poll payment-status for the outcome.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=MonitorInputSerializer,
        responses={
            202: MonitorResultSerializer,
            **error_responses(
                *IDEMPOTENT_POST_ERRORS,
                403,
                404,
                429,
                502,
                e422=PROVIDER_REJECTED_422,
                e400="`invalid_transaction_hash`, `not_a_chain_payment`, field errors, ...",
                e409="`transaction_hash_already_used`, `transaction_hash_mismatch`, "
                "`idempotency_key_in_use`.",
            ),
        },
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = MonitorInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if v.get("transaction_id"):
            payment = payment_get_for_user(request.user, v["transaction_id"])
            order = payment.order
        else:
            order = order_get_for_user(request.user, v["order_id"])
            payment = order.payments.order_by("-created_at").first()
            if payment is None:
                raise NotFound("The order has no payment.", code="payment_not_found")
        if not user_may_pay(request.user, order):
            raise deny("Only the buyer reports a payment's transaction.")
        payment = payment_claim_transaction(
            payment_id=payment.id,
            transaction_hash=v["transaction_hash"],
            chain_id=v.get("chain_id"),
            actor=request_actor(request),
        )
        payment = PaymentTransaction.objects.get(pk=payment.pk)
        return Response(MonitorResultSerializer(payment).data, status=status.HTTP_202_ACCEPTED)


__all__ = [
    "MonitorBlockchainView",
    "PaymentRefundView",
    "PaymentRetryView",
    "PaymentStatusUpdateView",
    "PaymentTransactionCreateView",
]
