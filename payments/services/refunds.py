"""Refunds: requested under the payment's row lock, sent to the provider once, and followed
to their outcome (a refund failing after it succeeded gives the money back).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import transaction

from common.errors import (
    Conflict,
    NotFound,
    ProviderRejected,
    ProviderUnavailable,
)
from common.money import add, format_amount, parse_amount, sub
from orders.audit import Actor, apply_transition, record_event
from orders.services import order_lock
from payments.models import (
    REFUNDABLE_STATES,
    PaymentTransaction,
    Refund,
    RefundStatus,
)
from payments.providers.base import (
    Outcome,
    ProviderError,
    ProviderResult,
    ProviderUnavailableError,
)
from payments.providers.registry import get_provider
from payments.selectors import (
    payment_failure_kind as payment_failure_kind,  # kept importable from here
)
from payments.selectors import (
    payment_refund_candidate,
)
from payments.services.chain_tx import chain_send_request
from payments.services.core import (
    announce_refund,
    lock_refund,
    payment_flag,
    payment_follow_refunds,
    refund_data,
)
from payments.services.sync import order_sync


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
        announce_refund(refund, "")
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
        order, payment, refund = lock_refund(refund_id)
        before = refund.status
        if result.reference and not refund.provider_reference:
            refund.provider_reference = result.reference
        if result.raw_status:
            refund.provider_status = result.raw_status[:64]
        refund.save()
        common: dict[str, Any] = {
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
            payment_follow_refunds(payment, actor=actor)
            order_sync(order, actor=actor, details={"refund_id": str(refund.id)})
            announce_refund(refund, before)
    return refund
