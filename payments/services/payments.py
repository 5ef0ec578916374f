"""Payments: create, start with the provider, apply what the provider says, status changes by
staff, cancel, retry, and claims of chain transactions.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import (
    Conflict,
    InvalidTransition,
    ProviderRejected,
    ProviderUnavailable,
    ValidationFailed,
)
from common.money import format_amount, get_currency, parse_amount
from orders.audit import Actor, record_event, transition_names_to
from orders.models import PAYABLE_STATES
from orders.services import order_lock
from payments.models import (
    OPEN_STATES,
    PAID_STATES,
    PaymentMethod,
    PaymentTransaction,
)
from payments.providers.base import (
    NOT_BOUND,
    FailureKind,
    Outcome,
    ProviderError,
    ProviderResult,
    ProviderUnavailableError,
)
from payments.providers.registry import get_provider, provider_name_for_method
from payments.selectors import (
    order_outstanding_amount,
    payment_retry_blocked,
)
from payments.selectors import (
    payment_failure_kind as payment_failure_kind,  # kept importable from here
)
from payments.services.core import (
    OWN_SERVICE_STATES,
    RESULT_FIELDS,
    P,
    announce_payment,
    lock_payment,
    payment_data,
    payment_flag,
    payment_get,
    payment_transition,
    transaction_hash_clean,
)
from payments.services.fees import compute_fee, fee_rule_for
from payments.services.sync import order_sync


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
            raise Conflict(  # well-formed, but not this order's: the stored order decides
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
            raise Conflict(
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
        announce_payment(payment, "", actor)
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
        _, payment = lock_payment(payment_id)
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
        transition = _transition_for_outcome(payment.status, result.outcome)
        if not transition:
            payment.save()  # else the transition saves the row (one UPDATE, not two)
        info = {"provider_status": result.raw_status, **(details or {})}
        if result.error_code:
            info["error_code"] = result.error_code
        if transition == "fail":
            payment_transition(
                payment,
                "fail",
                actor=actor,
                details=info,
                args=(result.error_code, result.error_message),
            )
        elif transition:
            payment_transition(payment, transition, actor=actor, details=info)
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
    }.get((outcome, P(status)))


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
        _, payment = lock_payment(payment_id)
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
    (``payment_cancel``). ``confirmed`` never rests on anyone's word: a provider-backed payment
    is re-read from its provider and confirmed only on its evidence (409
    ``provider_disagrees`` otherwise); a payment no provider can show (a manual one, e.g. a
    bank transfer recorded by hand) needs a second staff member's approval. ``failed`` and
    ``expired`` belong to the provider of a provider-backed payment (409
    ``status_owned_by_provider``). Other states go through ``payment_update_status``."""
    if status == P.CANCELLED:
        return payment_cancel(payment_id=payment_id, actor=actor, reason=reason)
    payment = payment_get(payment_id)
    manual = payment.provider in MANUAL_PROVIDERS
    if status == P.CONFIRMED and not manual:
        return _confirm_on_provider_evidence(payment, actor=actor, reason=reason)
    if status == P.CONFIRMED:
        return _confirm_by_two_staff(payment, actor=actor, reason=reason, details=details)
    if status in PROVIDER_OWNED_STATES and not manual:
        raise Conflict(
            f"A {payment.provider} payment becomes {status} through its provider only.",
            code="status_owned_by_provider",
            details={"provider": payment.provider, "status": payment.status, "to_state": status},
        )
    return payment_update_status(
        payment_id=payment_id, status=status, actor=actor, reason=reason, details=details
    )


def _confirm_on_provider_evidence(
    payment: PaymentTransaction, *, actor: Actor, reason: str
) -> PaymentTransaction:
    result = get_provider(payment.provider).fetch_payment(payment_data(payment))
    if result.outcome != Outcome.SUCCEEDED:
        raise Conflict(
            "The provider does not show this payment paid.",
            code="provider_disagrees",
            details={"provider": payment.provider, "provider_status": result.raw_status},
        )
    return payment_apply_result(
        payment_id=payment.id,
        result=result,
        actor=actor,
        details={"reason": reason, "confirmed_by": "staff on the provider's evidence"},
    )


def _confirm_by_two_staff(
    payment: PaymentTransaction,
    *,
    actor: Actor,
    reason: str,
    details: dict[str, Any] | None,
) -> PaymentTransaction:
    """The first staff member's request is recorded (and audited); a different one confirms."""
    staff_id = getattr(actor.user, "pk", None)
    if staff_id is None:
        raise Conflict("A manual confirmation is made by staff.", code="staff_required")
    with transaction.atomic():
        _, locked = lock_payment(payment.id)
        asked = locked.provider_data.get("manual_confirmation") or {}
        if not asked:
            locked.provider_data = {
                **locked.provider_data,
                "manual_confirmation": {"requested_by": staff_id, "reason": reason},
            }
            locked.save(update_fields=["provider_data", "updated_at"])
            record_event(
                order_id=locked.order_id,
                entity="payment",
                action="confirmation_requested",
                actor=actor,
                payment_id=locked.id,
                details={"reason": reason, **(details or {})},
            )
            return locked
        if asked.get("requested_by") == staff_id:
            raise Conflict(
                "A second staff member must approve this confirmation.",
                code="second_approval_required",
                details={"requested_by": asked.get("requested_by")},
            )
    return payment_update_status(
        payment_id=payment.id,
        status=P.CONFIRMED,
        actor=actor,
        reason=reason,
        details={"requested_by": asked.get("requested_by"), **(details or {})},
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


def payment_claim_transaction(
    *, payment_id: UUID, transaction_hash: str, chain_id: int | None, actor: Actor
) -> PaymentTransaction:
    """Claim an on-chain transaction for a crypto or escrow payment and verify it.

    For a payment bound on chain (paid through the Payments contract) the hash is a hint to
    look now: it is recorded only when its receipt carries the contract's event naming this
    payment; anything else changes nothing (the monitor finds the event by itself)."""
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
    if result.raw_status == NOT_BOUND:
        return payment  # a hint only: the transaction does not pay this payment (yet)
    try:
        return payment_apply_result(
            payment_id=payment.id, result=result, actor=actor, details={"transaction_hash": tx_hash}
        )
    except IntegrityError:
        raise Conflict(
            "Another payment has claimed this transaction.", code="transaction_hash_already_used"
        ) from None
