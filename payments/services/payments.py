"""Writes on payments and refunds. Each service is one transaction (provider calls happen
after the commit of the row they act for); every change goes through a transition, writes an
audit event and re-synchronises the order."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import (
    Conflict,
    InvalidTransition,
    NotFound,
    ProviderRejected,
    ProviderUnavailable,
    ValidationFailed,
)
from common.money import add, format_amount, get_currency, parse_amount, sub
from orders.audit import Actor, apply_transition, record_event, transition_names_to
from orders.models import PAYABLE_STATES, Order
from orders.services import order_lock
from payments.models import (
    OPEN_STATES,
    PAID_STATES,
    REFUNDABLE_STATES,
    UNSUCCESSFUL_STATES,
    PaymentMethod,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    RefundStatus,
)
from payments.providers.base import (
    FailureKind,
    Outcome,
    PaymentData,
    ProviderError,
    ProviderResult,
    ProviderUnavailableError,
    RefundData,
)
from payments.providers.registry import get_provider, provider_name_for_method
from payments.selectors import (
    order_outstanding_amount,
    payment_refund_candidate,
    payment_retry_blocked,
)
from payments.selectors import (
    payment_failure_kind as payment_failure_kind,  # kept importable from here
)
from payments.services.chain_tx import chain_send_request
from payments.services.fees import compute_fee, fee_rule_for
from payments.services.sync import order_sync
from payments.signals import order_payments_changed, payment_status_changed, refund_status_changed

P = PaymentStatus
#: Payment states only the refund and dispute services may set (they keep the refund rows,
#: the refunded amount and the dispute's memory consistent).
OWN_SERVICE_STATES = frozenset({P.PARTIALLY_REFUNDED, P.REFUNDED, P.DISPUTED})
TX_HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")
#: Fields a provider result may set on a payment; status never comes this way.
RESULT_FIELDS = frozenset(
    {
        "payment_intent_id",
        "chain_id",
        "token_address",
        "amount_base_units",
        "pay_to_address",
        "transaction_hash",
        "sender_address",
        "block_number",
        "block_hash",
        "confirmations",
        "required_confirmations",
        "gas_used",
        "effective_gas_price",
        "escrow_id",
        "contract_address",
        "expires_at",
    }
)


# --- reading and locking --------------------------------------------------------------------
def payment_data(payment: PaymentTransaction) -> PaymentData:
    order = payment.order
    return PaymentData(
        payment_id=payment.id,
        order_id=payment.order_id,
        method=payment.method,
        amount=payment.amount,
        currency=payment.currency,
        idempotency_key=f"orderpay-payment-{payment.id}",
        buyer_id=order.buyer_id,
        seller_id=order.seller_id,
        buyer_email=getattr(order.buyer, "email", ""),
        payment_intent_id=payment.payment_intent_id,
        chain_id=payment.chain_id,
        transaction_hash=payment.transaction_hash,
        token_address=payment.token_address,
        pay_to_address=payment.pay_to_address,
        amount_base_units=int(payment.amount_base_units)
        if payment.amount_base_units is not None
        else None,
        escrow_id=payment.escrow_id,
        contract_address=payment.contract_address,
        sender_address=payment.sender_address,
        expires_at=payment.expires_at,
        details=dict(payment.provider_data),
        created_at=payment.created_at,
    )


def refund_data(refund: Refund) -> RefundData:
    return RefundData(
        refund_id=refund.id,
        payment=payment_data(refund.payment),
        amount=refund.amount,
        currency=refund.currency,
        idempotency_key=f"orderpay-refund-{refund.idempotency_key}",
        reason=refund.reason,
        provider_reference=refund.provider_reference,
    )


def payment_get(payment_id: UUID | str) -> PaymentTransaction:
    try:
        return PaymentTransaction.objects.select_related("order", "order__buyer").get(pk=payment_id)
    except (PaymentTransaction.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("Payment not found.", code="payment_not_found") from None


def _lock_payment(payment_id: UUID | str) -> tuple[Order, PaymentTransaction]:
    """Lock the payment's order, then the payment (always in that order: no deadlocks)."""
    try:
        order_id = (
            PaymentTransaction.objects.filter(pk=payment_id)
            .values_list("order_id", flat=True)
            .first()
        )
    except (ValidationError, ValueError, TypeError):
        order_id = None
    if order_id is None:
        raise NotFound("Payment not found.", code="payment_not_found")
    order = order_lock(order_id)
    payment = PaymentTransaction.objects.select_for_update().get(pk=payment_id)
    payment.order = order
    return order, payment


def _lock_refund(refund_id: UUID | str) -> tuple[Order, PaymentTransaction, Refund]:
    payment_id = Refund.objects.filter(pk=refund_id).values_list("payment_id", flat=True).first()
    if payment_id is None:
        raise NotFound("Refund not found.", code="refund_not_found")
    order, payment = _lock_payment(payment_id)
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    refund.payment = payment
    return order, payment, refund


def _announce_payment(payment: PaymentTransaction, before: str, actor: Actor) -> None:
    after, pid, oid = payment.status, payment.id, payment.order_id

    def send() -> None:
        payment_status_changed.send(
            sender=PaymentTransaction,
            payment_id=pid,
            order_id=oid,
            from_state=before,
            to_state=after,
            actor_type=actor.type,
        )
        order_payments_changed.send(sender=PaymentTransaction, order_id=oid)

    transaction.on_commit(send)


def _announce_refund(refund: Refund, before: str) -> None:
    rid, pid, oid, after = refund.id, refund.payment_id, refund.payment.order_id, refund.status

    def send() -> None:
        refund_status_changed.send(
            sender=Refund,
            refund_id=rid,
            payment_id=pid,
            order_id=oid,
            from_state=before,
            to_state=after,
        )
        order_payments_changed.send(sender=Refund, order_id=oid)

    transaction.on_commit(send)


def payment_transition(
    payment: PaymentTransaction,
    name: str,
    *,
    actor: Actor,
    details: dict[str, Any] | None = None,
    args: tuple[Any, ...] = (),
) -> str:
    """Run a status transition on a payment whose order and row the caller has locked."""
    before = payment.status
    after = apply_transition(
        payment,
        name,
        actor=actor,
        order_id=payment.order_id,
        entity="payment",
        payment_id=payment.id,
        details=details,
        args=args,
    )
    order_sync(payment.order, actor=actor, details={"payment_id": str(payment.id)})
    if after == P.CONFIRMED and before not in PAID_STATES:
        _flag_unexpected_money(payment, before, actor=actor)
    _announce_payment(payment, before, actor)
    return after


def high_value_threshold(currency: str) -> Decimal | None:
    """The amount from which a payment in ``currency`` goes to review (None: no threshold)."""
    value = settings.REVIEW_HIGH_VALUE_THRESHOLDS.get(currency)
    return None if value in (None, "") else parse_amount(value, currency)


def _flag_unexpected_money(payment: PaymentTransaction, before: str, *, actor: Actor) -> None:
    """Money that arrived late, unexpectedly or in large amounts goes to staff review."""
    order = payment.order
    if before in UNSUCCESSFUL_STATES:
        payment_flag(payment, "late_payment", actor=actor, details={"previous_status": before})
    if order.status == "cancelled":
        payment_flag(payment, "order_cancelled", actor=actor, details={})
    paid = add(
        *PaymentTransaction.objects.filter(order_id=order.id, status__in=PAID_STATES).values_list(
            "amount", flat=True
        )
    )
    threshold = high_value_threshold(payment.currency)
    if threshold is not None and payment.amount >= threshold:
        payment_flag(
            payment,
            "high_value",
            actor=actor,
            details={"amount": str(payment.amount), "threshold": str(threshold)},
        )
    if paid > order.amount:
        payment_flag(
            payment,
            "overpaid",
            actor=actor,
            details={"paid_total": str(paid), "order_amount": str(order.amount)},
        )


def payment_flag(
    payment: PaymentTransaction, reason: str, *, actor: Actor, details: dict[str, Any] | None = None
) -> None:
    """Put a locked payment in the staff review queue with a reason (idempotent per reason)."""
    if payment.review_status == "flagged" and any(
        r.get("reason") == reason for r in payment.review_reasons
    ):
        return
    apply_transition(
        payment,
        "flag_for_review",
        field_name="review_status",
        actor=actor,
        order_id=payment.order_id,
        entity="review",
        payment_id=payment.id,
        details={"reason": reason, **(details or {})},
        args=(reason, details or {}),
    )
    transaction.on_commit(
        lambda: order_payments_changed.send(sender=PaymentTransaction, order_id=payment.order_id)
    )


def payment_flag_for_review(
    *, payment_id: UUID, reason: str, actor: Actor, details: dict[str, Any] | None = None
) -> PaymentTransaction:
    """Put a payment in the staff review queue (a provider reports something we did not do:
    a refund made outside orderpay, a second PaymentIntent, ...). Idempotent per reason."""
    with transaction.atomic():
        _, payment = _lock_payment(payment_id)
        payment_flag(payment, reason, actor=actor, details=details)
    return payment


def payment_review_decide(
    *, payment_id: UUID, approve: bool, note: str, actor: Actor
) -> PaymentTransaction:
    with transaction.atomic():
        _, payment = _lock_payment(payment_id)
        apply_transition(
            payment,
            "approve_review" if approve else "reject_review",
            field_name="review_status",
            actor=actor,
            order_id=payment.order_id,
            entity="review",
            payment_id=payment.id,
            details={"note": note},
            args=(note,),
        )
    return payment


# --- creating payments ----------------------------------------------------------------------
def payment_create(
    *,
    order_id: UUID,
    method: str,
    actor: Actor,
    amount: Any = None,
    currency: str | None = None,
    details: dict[str, Any] | None = None,
    retry_of: PaymentTransaction | None = None,
) -> PaymentTransaction:
    """Record a new payment attempt for the order (no provider call: see ``payment_start``)."""
    if method not in PaymentMethod.values:
        raise ValidationFailed(
            f"Unknown payment method {method!r}.",
            code="unknown_method",
            details={"supported": list(PaymentMethod.values)},
        )
    provider_name = provider_name_for_method(method)
    get_provider(provider_name)
    with transaction.atomic():
        order = order_lock(order_id)
        if currency is not None and get_currency(currency).code != order.currency:
            raise ValidationFailed(
                "The payment's currency must be the order's.",
                code="currency_mismatch",
                details={"order_currency": order.currency},
            )
        if order.status not in PAYABLE_STATES:
            raise Conflict(
                f"An order that is {order.status} cannot take a payment.",
                code="order_not_payable",
                details={"order_status": order.status},
            )
        payments = list(PaymentTransaction.objects.select_for_update().filter(order=order))
        open_payment = next((p for p in payments if p.status in OPEN_STATES), None)
        if open_payment is not None:
            raise Conflict(
                "The order has a payment in progress.",
                code="payment_in_progress",
                details={"transaction_id": str(open_payment.id), "status": open_payment.status},
            )
        outstanding = order_outstanding_amount(order, payments)
        value = outstanding if amount is None else parse_amount(amount, order.currency)
        if value > outstanding:
            raise ValidationFailed(
                "The amount exceeds what is outstanding on the order.",
                code="amount_exceeds_outstanding",
                details={"outstanding_amount": format_amount(outstanding, order.currency)},
            )
        if value <= 0:
            raise Conflict("Nothing is outstanding on the order.", code="nothing_outstanding")
        rule = fee_rule_for(method, order.currency)
        payment = PaymentTransaction.objects.create(
            order=order,
            method=method,
            provider=provider_name,
            amount=value,
            currency=order.currency,
            fee_amount=compute_fee(value, order.currency, rule),
            fee_rule=rule,
            retry_of=retry_of,
            provider_data={"request": details or {}},
            expires_at=timezone.now() + settings.PAYMENT_EXPIRY,
        )
        payment.order = order
        record_event(
            order_id=order.id,
            entity="payment",
            action="create",
            actor=actor,
            to_state=payment.status,
            payment_id=payment.id,
            details={
                "method": method,
                "amount": str(value),
                "fee_amount": str(payment.fee_amount),
                "fee_rule": str(rule) if rule else None,
                "retry_of": str(retry_of.id) if retry_of else None,
            },
        )
        order_sync(order, actor=actor, details={"payment_id": str(payment.id)})
        _announce_payment(payment, "", actor)
    return payment


def payment_start(*, payment_id: UUID, actor: Actor) -> ProviderResult:
    """Ask the provider to open the payment; call after the payment row has committed.

    A timeout or 5xx leaves the payment ``unknown`` and raises ``ProviderUnavailable`` (502);
    a refusal fails the payment and raises ``ProviderRejected`` (422, the provider's code);
    the provider's idempotency key (derived from the payment id) makes a repeat call safe.
    """
    payment = payment_get(payment_id)
    if payment.status not in (P.PENDING, P.UNKNOWN):
        raise Conflict("The payment has already been started.", code="payment_already_started")
    provider = get_provider(payment.provider)
    try:
        result = provider.create_payment(payment_data(payment))
    except ProviderUnavailableError as exc:
        payment_apply_result(
            payment_id=payment.id,
            actor=actor,
            result=ProviderResult(
                Outcome.UNKNOWN,
                error_code=exc.code,
                error_message=str(exc),
                failure_kind=FailureKind.TRANSIENT,
            ),
        )
        raise ProviderUnavailable(str(exc), details={"transaction_id": str(payment.id)}) from exc
    except ProviderError as exc:
        payment_apply_result(
            payment_id=payment.id,
            actor=actor,
            result=ProviderResult(
                Outcome.FAILED, error_code=exc.code, error_message=str(exc), failure_kind=exc.kind
            ),
        )
        raise ProviderRejected(
            str(exc), code=exc.code, details={"transaction_id": str(payment.id)}
        ) from exc
    payment_apply_result(payment_id=payment.id, actor=actor, result=result)
    return result


def payment_apply_result(
    *, payment_id: UUID, result: ProviderResult, actor: Actor, details: dict[str, Any] | None = None
) -> PaymentTransaction:
    """Apply what a provider says about a payment. State never moves backwards: a success
    stays a success whatever arrives after it."""
    with transaction.atomic():
        _, payment = _lock_payment(payment_id)
        for name, value in result.fields.items():
            if name not in RESULT_FIELDS:
                raise ValueError(f"A provider may not set {name!r}.")
            setattr(payment, name, value)
        if result.raw_status:
            payment.provider_status = result.raw_status[:64]
        if result.data:
            payment.provider_data = {**payment.provider_data, **result.data}
        if result.failure_kind or result.outcome == Outcome.FAILED:
            # a failure is classified by its own result, never by an earlier one's kind
            payment.provider_data = {
                **payment.provider_data,
                "failure_kind": str(result.failure_kind),
            }
        name = _transition_for_outcome(payment.status, result.outcome)
        if not name:
            payment.save()  # else the transition saves the row (one UPDATE, not two)
        info = {"provider_status": result.raw_status, **(details or {})}
        if result.error_code:
            info["error_code"] = result.error_code
        if name == "fail":
            payment_transition(
                payment,
                "fail",
                actor=actor,
                details=info,
                args=(result.error_code, result.error_message),
            )
        elif name:
            payment_transition(payment, name, actor=actor, details=info)
        for reason, flag_details in result.review_flags:
            payment_flag(payment, reason, actor=actor, details=flag_details)
    return payment


def _transition_for_outcome(status: str, outcome: Outcome) -> str | None:
    if outcome == Outcome.SUCCEEDED:
        return None if status in PAID_STATES else "confirm"
    if status in PAID_STATES:
        return None  # never backwards from money received
    return {
        (Outcome.PROCESSING, P.PENDING): "start_processing",
        (Outcome.PROCESSING, P.UNKNOWN): "start_processing",
        (Outcome.PENDING, P.PROCESSING): "back_to_pending",
        (Outcome.PENDING, P.UNKNOWN): "back_to_pending",
        (Outcome.FAILED, P.PENDING): "fail",
        (Outcome.FAILED, P.PROCESSING): "fail",
        (Outcome.FAILED, P.UNKNOWN): "fail",
        (Outcome.CANCELLED, P.PENDING): "cancel",
        (Outcome.CANCELLED, P.UNKNOWN): "cancel",
        (Outcome.CANCELLED, P.PROCESSING): "fail",
        (Outcome.UNKNOWN, P.PENDING): "mark_unknown",
        (Outcome.UNKNOWN, P.PROCESSING): "mark_unknown",
    }.get((outcome, status))


def payment_update_status(
    *,
    payment_id: UUID,
    status: str,
    actor: Actor,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> PaymentTransaction:
    """Move a payment to ``status`` by the transition that leads there (staff and services)."""
    if status not in P.values:
        raise ValidationFailed(
            f"Unknown payment status {status!r}.",
            code="unknown_status",
            details={"supported": list(P.values)},
        )
    if status in OWN_SERVICE_STATES:
        raise InvalidTransition(
            f"A payment becomes {status} through its refund or dispute services only.",
            details={"entity": "payment", "to_state": status},
        )
    with transaction.atomic():
        _, payment = _lock_payment(payment_id)
        names = transition_names_to(payment, status)
        if not names:
            raise InvalidTransition(
                f"No transition leads a payment from {payment.status} to {status}.",
                details={"entity": "payment", "from_state": payment.status, "to_state": status},
            )
        payment_transition(
            payment,
            names[0],
            actor=actor,
            details={"reason": reason, **(details or {})},
            args=("manual", reason) if status == P.FAILED else (),
        )
    return payment


#: Providers with no outside party keeping the payment's state (staff may set any state).
MANUAL_PROVIDERS = frozenset({"dummy"})
#: States a provider-backed open payment reaches only through its provider (card: Stripe's
#: PaymentIntent; chain: verification and finality; expiry: the provider is cancelled first).
PROVIDER_OWNED_STATES = frozenset({P.CONFIRMED, P.FAILED, P.EXPIRED})


def payment_set_status(
    *,
    payment_id: UUID,
    status: str,
    actor: Actor,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> PaymentTransaction:
    """Staff setting a payment's status by hand. ``cancelled`` cancels with the provider first
    (``payment_cancel``); ``confirmed``, ``failed`` and ``expired`` on an open payment belong to
    its provider (409 ``status_owned_by_provider``) unless the provider is a manual one; other
    states go through ``payment_update_status``."""
    if status == P.CANCELLED:
        return payment_cancel(payment_id=payment_id, actor=actor, reason=reason)
    payment = payment_get(payment_id)
    if (
        status in PROVIDER_OWNED_STATES
        and payment.status in OPEN_STATES
        and payment.provider not in MANUAL_PROVIDERS
    ):
        raise Conflict(
            f"A {payment.provider} payment becomes {status} through its provider only.",
            code="status_owned_by_provider",
            details={"provider": payment.provider, "status": payment.status, "to_state": status},
        )
    return payment_update_status(
        payment_id=payment_id, status=status, actor=actor, reason=reason, details=details
    )


def payment_cancel(*, payment_id: UUID, actor: Actor, reason: str = "") -> PaymentTransaction:
    """Cancel an open payment with its provider, then locally."""
    payment = payment_get(payment_id)
    if payment.status not in (P.PENDING, P.UNKNOWN):
        raise InvalidTransition(
            f"A payment that is {payment.status} cannot be cancelled.",
            details={"entity": "payment", "transition": "cancel", "from_state": payment.status},
        )
    try:
        result = get_provider(payment.provider).cancel_payment(payment_data(payment))
    except ProviderUnavailableError as exc:
        raise ProviderUnavailable(str(exc)) from exc
    except ProviderError as exc:  # e.g. the PaymentIntent succeeded meanwhile: nothing changes
        raise ProviderRejected(
            str(exc), code=exc.code, details={"transaction_id": str(payment.id)}
        ) from exc
    return payment_apply_result(
        payment_id=payment.id, result=result, actor=actor, details={"reason": reason}
    )


def payment_retry(
    *,
    order_id: UUID,
    actor: Actor,
    method: str | None = None,
    details: dict[str, Any] | None = None,
) -> PaymentTransaction:
    """A new attempt after the last one failed, expired or was cancelled; optionally by another
    method. A final failure (fraud) or an attempt in progress is ``not_retryable``. By the
    same method, the new attempt keeps the last one's request details (chain, token, payer's
    wallet), ``details`` overriding them."""
    with transaction.atomic():
        order = order_lock(order_id)
        payments = list(PaymentTransaction.objects.filter(order=order).order_by("created_at"))
        last = payments[-1] if payments else None
        if last is None or payment_retry_blocked(order.status, payments, method):
            raise Conflict(
                "There is no failed payment to retry.",
                code="not_retryable",
                details={
                    "order_status": order.status,
                    "last_status": last.status if last else None,
                },
            )
        method = method or last.method
        request = dict(last.provider_data.get("request") or {}) if method == last.method else {}
        return payment_create(
            order_id=order.id,
            method=method,
            actor=actor,
            retry_of=last,
            details={**request, **(details or {})},
        )


def payment_retry_start(
    *,
    order_id: UUID,
    actor: Actor,
    method: str | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[PaymentTransaction, ProviderResult]:
    """Retry (``payment_retry``: the new attempt's row commits) and open the new attempt with
    its provider (``payment_start``). A refusal or timeout of the provider raises as
    ``payment_start`` does, with the new attempt's id in ``details.transaction_id``."""
    payment = payment_retry(order_id=order_id, actor=actor, method=method, details=details)
    return payment, payment_start(payment_id=payment.id, actor=actor)


def transaction_hash_clean(value: Any) -> str:
    """THE check of a transaction hash given by a person (claims, manual refunds): 0x and 64
    hex digits, returned lowercase; else 400 ``invalid_transaction_hash``."""
    tx_hash = str(value or "").strip().lower()
    if not TX_HASH_RE.match(tx_hash):
        raise ValidationFailed(
            "A transaction hash is 0x and 64 hex digits.", code="invalid_transaction_hash"
        )
    return tx_hash


def payment_claim_transaction(
    *, payment_id: UUID, transaction_hash: str, chain_id: int | None, actor: Actor
) -> PaymentTransaction:
    """Claim an on-chain transaction for a crypto or escrow payment and verify it."""
    tx_hash = transaction_hash_clean(transaction_hash)
    payment = payment_get(payment_id)
    if payment.method not in (PaymentMethod.CRYPTO, PaymentMethod.ESCROW):
        raise ValidationFailed(
            "Only crypto and escrow payments take a transaction hash.", code="not_a_chain_payment"
        )
    if PaymentTransaction.objects.filter(transaction_hash=tx_hash).exclude(pk=payment.id).exists():
        raise Conflict(
            "Another payment has claimed this transaction.", code="transaction_hash_already_used"
        )
    if payment.transaction_hash and payment.transaction_hash != tx_hash:
        raise Conflict(
            "The payment has claimed another transaction.", code="transaction_hash_mismatch"
        )
    if (
        payment.status not in (*OPEN_STATES, P.EXPIRED, P.FAILED)
        and payment.transaction_hash == tx_hash
    ):
        return payment  # already verified: claiming again changes nothing
    try:
        result = get_provider(payment.provider).claim_transaction(
            payment_data(payment), tx_hash, chain_id
        )
    except ProviderUnavailableError as exc:
        raise ProviderUnavailable(str(exc)) from exc
    except ProviderError as exc:
        raise ProviderRejected(
            str(exc), code=exc.code, details={"transaction_id": str(payment.id)}
        ) from exc
    try:
        return payment_apply_result(
            payment_id=payment.id, result=result, actor=actor, details={"transaction_hash": tx_hash}
        )
    except IntegrityError:
        raise Conflict(
            "Another payment has claimed this transaction.", code="transaction_hash_already_used"
        ) from None


# --- refunds --------------------------------------------------------------------------------
def payment_refund(
    *,
    order_id: UUID,
    actor: Actor,
    amount: Any = None,
    reason: str = "",
    payment_id: UUID | None = None,
    send: bool = True,
) -> Refund:
    """Record a refund under the payment's row lock (never more than was paid), then ask the
    provider after the commit. 409 ``refund_exceeds_paid`` sends nothing."""
    with transaction.atomic():
        order = order_lock(order_id)
        payments = list(PaymentTransaction.objects.select_for_update().filter(order=order))
        if payment_id is not None:
            payment = next((p for p in payments if str(p.id) == str(payment_id)), None)
            if payment is None:
                raise NotFound("Payment not found.", code="payment_not_found")
        else:
            payment = payment_refund_candidate(payments)
        if payment is None or payment.status not in REFUNDABLE_STATES:
            raise Conflict("Nothing on this order can be refunded.", code="not_refundable")
        payment.order = order
        room = payment.refundable_amount
        value = room if amount in (None, "") else parse_amount(amount, payment.currency)
        if value <= 0 or value > room:
            raise Conflict(
                "The refund exceeds what was paid and not yet refunded.",
                code="refund_exceeds_paid",
                details={
                    "refundable_amount": format_amount(room, payment.currency),
                    "requested": format_amount(value, payment.currency),
                },
            )
        user = actor.user if getattr(actor.user, "pk", None) else None
        refund = Refund.objects.create(
            payment=payment,
            amount=value,
            currency=payment.currency,
            reason=reason[:500],
            requested_by=user,
        )
        refund.payment = payment
        payment.refunded_amount = add(payment.refunded_amount, value)
        payment.save(update_fields=["refunded_amount", "updated_at"])
        record_event(
            order_id=order.id,
            entity="refund",
            action="request",
            actor=actor,
            to_state=refund.status,
            payment_id=payment.id,
            refund_id=refund.id,
            details={"amount": str(value), "reason": reason[:500]},
        )
        _announce_refund(refund, "")
    if send:
        refund_send(refund_id=refund.id, actor=actor)
        refund = Refund.objects.select_related("payment").get(pk=refund.id)
    return refund


#: ``Refund.provider_status`` while the refund's provider call is in flight (set under the row
#: lock before the call, replaced by the provider's own status when it answers).
REFUND_SENDING = "sending"


def refund_send(
    *, refund_id: UUID, actor: Actor, resume_idle_since: datetime | None = None
) -> ProviderResult:
    """Send a pending refund to its provider, once: under the refund's row lock it must have no
    provider reference and not be in flight, and is marked ``sending`` before the call (a
    second caller gets 409 ``refund_already_sent``). ``resume_idle_since``: the sweeper sends
    again a refund whose call died in flight, if the row has not changed since then (the
    provider's idempotency key makes the repeat safe)."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        in_flight = refund.provider_status == REFUND_SENDING and (
            resume_idle_since is None or refund.updated_at > resume_idle_since
        )
        if refund.status != RefundStatus.PENDING or refund.provider_reference or in_flight:
            raise Conflict("The refund has been sent already.", code="refund_already_sent")
        refund.provider_status = REFUND_SENDING
        refund.save(update_fields=["provider_status", "updated_at"])
    refund = Refund.objects.select_related("payment__order__buyer").get(pk=refund_id)
    provider = get_provider(refund.payment.provider)
    try:
        result = provider.refund(refund_data(refund))
    except ProviderUnavailableError as exc:
        refund_apply_result(
            refund_id=refund.id,
            actor=actor,
            result=ProviderResult(Outcome.UNKNOWN, error_code=exc.code, error_message=str(exc)),
        )
        raise ProviderUnavailable(str(exc), details={"refund_id": str(refund.id)}) from exc
    except ProviderError as exc:
        refund_apply_result(
            refund_id=refund.id,
            actor=actor,
            result=ProviderResult(Outcome.FAILED, error_code=exc.code, error_message=str(exc)),
        )
        raise ProviderRejected(
            str(exc), code=exc.code, details={"refund_id": str(refund.id)}
        ) from exc
    if result.send is not None:  # a chain transaction to record and broadcast
        try:
            result = chain_send_request(
                result.send, payment_id=refund.payment_id, refund_id=refund.id
            )
        except (ProviderUnavailableError, ProviderError) as exc:
            failed = isinstance(exc, ProviderUnavailableError)
            refund_apply_result(
                refund_id=refund.id,
                actor=actor,
                result=ProviderResult(
                    Outcome.UNKNOWN if failed else Outcome.FAILED,
                    error_code=exc.code,
                    error_message=str(exc),
                ),
            )
            if failed:
                raise ProviderUnavailable(str(exc), details={"refund_id": str(refund.id)}) from exc
            raise ProviderRejected(
                str(exc), code=exc.code, details={"refund_id": str(refund.id)}
            ) from exc
    refund_apply_result(refund_id=refund.id, actor=actor, result=result)
    return result


def refund_apply_result(*, refund_id: UUID, result: ProviderResult, actor: Actor) -> Refund:
    """Apply what the provider says of a refund. A refund that fails after it had succeeded
    gives the money back to the refundable amount and flags the payment for review."""
    with transaction.atomic():
        order, payment, refund = _lock_refund(refund_id)
        before = refund.status
        if result.reference and not refund.provider_reference:
            refund.provider_reference = result.reference
        if result.raw_status:
            refund.provider_status = result.raw_status[:64]
        refund.save()
        common = {
            "actor": actor,
            "order_id": order.id,
            "entity": "refund",
            "payment_id": payment.id,
            "refund_id": refund.id,
            "details": {"provider_status": result.raw_status, "error_code": result.error_code}
            if result.raw_status or result.error_code
            else None,
        }
        if result.outcome == Outcome.SUCCEEDED and before in (
            RefundStatus.PENDING,
            RefundStatus.UNKNOWN,
        ):
            apply_transition(refund, "succeed", **common)
        elif (
            result.outcome in (Outcome.FAILED, Outcome.CANCELLED) and before != RefundStatus.FAILED
        ):
            apply_transition(
                refund, "fail", args=(result.error_message or result.raw_status,), **common
            )
            payment.refunded_amount = sub(payment.refunded_amount, refund.amount)
            payment.save(update_fields=["refunded_amount", "updated_at"])
            if before == RefundStatus.SUCCEEDED:
                payment_flag(
                    payment,
                    "refund_failed",
                    actor=actor,
                    details={"refund_id": str(refund.id), "amount": str(refund.amount)},
                )
        elif result.outcome == Outcome.UNKNOWN and before == RefundStatus.PENDING:
            apply_transition(refund, "mark_unknown", **common)
        if refund.status != before:
            _payment_follow_refunds(payment, actor=actor)
            order_sync(order, actor=actor, details={"refund_id": str(refund.id)})
            _announce_refund(refund, before)
    return refund


def _payment_follow_refunds(payment: PaymentTransaction, *, actor: Actor) -> None:
    """Set the payment's refund state from its succeeded refunds (a dispute decides alone)."""
    if payment.status == P.DISPUTED:
        return
    refunded = add(
        *Refund.objects.filter(payment=payment, status=RefundStatus.SUCCEEDED).values_list(
            "amount", flat=True
        )
    )
    if refunded >= payment.amount and payment.status != P.REFUNDED:
        payment_transition(payment, "refund_fully", actor=actor)
    elif Decimal(0) < refunded < payment.amount and payment.status != P.PARTIALLY_REFUNDED:
        payment_transition(payment, "refund_partially", actor=actor)
    elif refunded == 0 and payment.status in (P.PARTIALLY_REFUNDED, P.REFUNDED):
        payment_transition(payment, "restore_after_refund_failure", actor=actor)


# --- disputes -------------------------------------------------------------------------------
def payment_open_dispute(
    *, payment_id: UUID, actor: Actor, details: dict[str, Any] | None = None
) -> PaymentTransaction:
    with transaction.atomic():
        _, payment = _lock_payment(payment_id)
        if payment.status != P.DISPUTED:
            payment_transition(payment, "open_dispute", actor=actor, details=details)
        payment_flag(payment, "dispute", actor=actor, details=details)
    return payment


def payment_close_dispute(
    *, payment_id: UUID, actor: Actor, outcome: str, details: dict[str, Any] | None = None
) -> PaymentTransaction:
    """``outcome``: ``won`` (money stays with the seller), ``lost`` (returned to the buyer, as
    a succeeded refund), ``released`` (escrow paid out to the seller), or ``split`` (part went
    back to the buyer as refunds already recorded, the rest to the seller)."""
    if outcome not in ("won", "lost", "released", "split"):
        raise ValidationFailed("Unknown dispute outcome.", code="invalid_dispute_outcome")
    with transaction.atomic():
        _, payment = _lock_payment(payment_id)
        if payment.status != P.DISPUTED:
            return payment  # closed already
        info = {"outcome": outcome, **(details or {})}
        if outcome in ("won", "split"):
            payment_transition(payment, "close_dispute", actor=actor, details=info)
            _payment_follow_refunds(payment, actor=actor)  # refunds that settled meanwhile
        elif outcome == "released":
            payment_transition(payment, "release_after_dispute", actor=actor, details=info)
        else:
            # The buyer got the whole amount back through the dispute: refunds not settled yet
            # are superseded (failed, never sent again), and the dispute's refund covers what
            # the succeeded ones did not.
            for pending in Refund.objects.select_for_update().filter(
                payment=payment, status__in=(RefundStatus.PENDING, RefundStatus.UNKNOWN)
            ):
                before = pending.status
                pending.payment = payment
                apply_transition(
                    pending,
                    "fail",
                    args=("superseded: the dispute was lost",),
                    actor=actor,
                    order_id=payment.order_id,
                    entity="refund",
                    payment_id=payment.id,
                    refund_id=pending.id,
                    details={**info, "superseded_by": "dispute"},
                )
                _announce_refund(pending, before)
            succeeded = add(
                *Refund.objects.filter(payment=payment, status=RefundStatus.SUCCEEDED).values_list(
                    "amount", flat=True
                )
            )
            room = payment.amount - succeeded
            if room > 0:
                refund = Refund.objects.create(
                    payment=payment, amount=room, currency=payment.currency, reason="dispute lost"
                )
                refund.payment = payment
                apply_transition(
                    refund,
                    "succeed",
                    actor=actor,
                    order_id=payment.order_id,
                    entity="refund",
                    payment_id=payment.id,
                    refund_id=refund.id,
                    details=info,
                )
                payment.refunded_amount = payment.amount
                payment.save(update_fields=["refunded_amount", "updated_at"])
                _announce_refund(refund, "")
            payment_transition(payment, "refund_fully", actor=actor, details=info)
    return payment
