"""Reconciliation with Stripe: settle unknown outcomes, report every difference.

Run by ``python manage.py reconcile_stripe`` and the ``payments.reconcile_stripe`` beat job.
Open payments (pending, processing, unknown) older than a grace period, every Stripe payment
changed within the look-back window, and refunds still pending or unknown are compared with
what Stripe holds. Where the local state is open (or failed/expired) Stripe's state is
applied through the services (never backwards from money received); where a final local state
disagrees with Stripe, the payment goes to the staff review queue. Nothing is ever created at
Stripe here: reconciling never charges or refunds.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from common.errors import DomainError
from common.money import add
from orders.audit import Actor
from payments.models import (
    OPEN_STATES,
    PAID_STATES,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    RefundStatus,
)
from payments.providers.base import Outcome, ProviderError
from payments.providers.stripe.client import StripeGateway
from payments.providers.stripe.provider import StripeProvider, stripe_amount
from payments.services.core import payment_data, refund_data
from payments.services.payments import payment_apply_result
from payments.services.refunds import refund_apply_result
from payments.services.reviews import payment_flag_for_review

logger = logging.getLogger(__name__)
P = PaymentStatus

#: Local payment states that agree with each outcome Stripe reports.
AGREEING = {
    Outcome.SUCCEEDED: set(PAID_STATES),
    Outcome.PROCESSING: {P.PROCESSING},
    Outcome.PENDING: {P.PENDING},
    Outcome.FAILED: {P.FAILED},
    Outcome.CANCELLED: {P.CANCELLED, P.FAILED},
}
AGREEING_REFUND = {
    Outcome.SUCCEEDED: {RefundStatus.SUCCEEDED},
    Outcome.PENDING: {RefundStatus.PENDING},
    Outcome.FAILED: {RefundStatus.FAILED},
    Outcome.CANCELLED: {RefundStatus.FAILED},
}
#: Local states reconciliation may move (Stripe's answer is applied); others are only flagged.
SETTLEABLE = {*OPEN_STATES, P.FAILED, P.EXPIRED}


@dataclass
class Difference:
    kind: str  # "payment" or "refund"
    id: str
    order_id: str
    local: str
    stripe: str
    action: str  # "applied", "flagged", "unreachable", "error"
    after: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        moved = f" -> {self.after}" if self.after else ""
        note = f" ({self.note})" if self.note else ""
        return (
            f"{self.kind} {self.id} (order {self.order_id}): local {self.local}, "
            f"stripe {self.stripe}: {self.action}{moved}{note}"
        )


def reconcile_stripe(
    *,
    grace_seconds: int | None = None,
    lookback_days: int | None = None,
    now: datetime | None = None,
    gateway: StripeGateway | None = None,
) -> list[Difference]:
    """Compare local Stripe payments and refunds with Stripe; settle, flag, report."""
    now = now or timezone.now()
    grace = timedelta(
        seconds=settings.STRIPE_RECONCILE_GRACE_SECONDS if grace_seconds is None else grace_seconds
    )
    since = now - timedelta(
        days=settings.STRIPE_RECONCILE_LOOKBACK_DAYS if lookback_days is None else lookback_days
    )
    provider = StripeProvider(gateway)
    actor = Actor.for_job("reconcile_stripe", reference=now.isoformat())
    differences: list[Difference] = []
    payments = (
        PaymentTransaction.objects.select_related("order", "order__buyer")
        .filter(provider="stripe")
        .filter(Q(status__in=OPEN_STATES, updated_at__lte=now - grace) | Q(updated_at__gte=since))
        .order_by("created_at")
    )
    for payment in payments.iterator(chunk_size=200):
        found = _reconcile_payment(payment, provider, actor)
        if found is not None:
            differences.append(found)
    refunds = (
        Refund.objects.select_related("payment__order__buyer")
        .filter(payment__provider="stripe")
        .filter(
            Q(status__in=(RefundStatus.PENDING, RefundStatus.UNKNOWN), updated_at__lte=now - grace)
            | Q(updated_at__gte=since)
        )
        .order_by("created_at")
    )
    for refund in refunds.iterator(chunk_size=200):
        found = _reconcile_refund(refund, provider, actor)
        if found is not None:
            differences.append(found)
    for difference in differences:
        logger.warning("stripe reconciliation: %s", difference)
    return differences


def _reconcile_payment(
    payment: PaymentTransaction, provider: StripeProvider, actor: Actor
) -> Difference | None:
    def diff(stripe: str, action: str, after: str = "", note: str = "") -> Difference:
        return Difference(
            "payment", str(payment.id), str(payment.order_id), payment.status, stripe, action,
            after, note,
        )  # fmt: skip

    data = payment_data(payment)
    try:
        result = provider.fetch_payment(data)
    except ProviderError as exc:
        return diff("?", "unreachable" if exc.kind == "transient" else "error", note=str(exc))
    stripe_state = result.raw_status or str(result.outcome)
    if payment.status in AGREEING.get(result.outcome, set()):
        return _check_refund_total(payment, provider, actor, stripe_state)
    if payment.status in SETTLEABLE:
        try:
            moved = payment_apply_result(
                payment_id=payment.id, result=result, actor=actor, details={"reconcile": True}
            )
        except DomainError as exc:
            return diff(stripe_state, "error", note=str(exc))
        if moved.status in AGREEING.get(result.outcome, set()):
            return diff(stripe_state, "applied", after=moved.status)
    payment_flag_for_review(
        payment_id=payment.id,
        reason="stripe_state_differs",
        actor=actor,
        details={"local": payment.status, "stripe": stripe_state},
    )
    return diff(stripe_state, "flagged")


def _check_refund_total(
    payment: PaymentTransaction, provider: StripeProvider, actor: Actor, stripe_state: str
) -> Difference | None:
    """A paid payment: do Stripe's refunds add up to ours (nothing refunded elsewhere)?"""
    if payment.status not in PAID_STATES or not payment.payment_intent_id:
        return None
    try:
        items = provider.gateway.list_refunds(payment.payment_intent_id)
    except ProviderError as exc:
        return Difference(
            "payment", str(payment.id), str(payment.order_id), payment.status, stripe_state,
            "unreachable", note=str(exc),
        )  # fmt: skip
    at_stripe = sum(
        int(i.get("amount") or 0) for i in items if i.get("status") in ("succeeded", "pending")
    )
    local = add(
        *Refund.objects.filter(payment=payment)
        .exclude(status=RefundStatus.FAILED)
        .values_list("amount", flat=True)
    )
    if payment.status == P.REFUNDED and not local:
        return None  # a lost dispute: the money went back through the dispute, not a refund
    ours = stripe_amount(local, payment.currency)
    if ours == at_stripe:
        return None
    payment_flag_for_review(
        payment_id=payment.id,
        reason="stripe_refunds_differ",
        actor=actor,
        details={"local_minor_units": ours, "stripe_minor_units": at_stripe},
    )
    return Difference(
        "payment", str(payment.id), str(payment.order_id), payment.status, stripe_state,
        "flagged", note=f"refunded {ours} here, {at_stripe} at Stripe (minor units)",
    )  # fmt: skip


def _reconcile_refund(refund: Refund, provider: StripeProvider, actor: Actor) -> Difference | None:
    def diff(stripe: str, action: str, after: str = "", note: str = "") -> Difference:
        return Difference(
            "refund", str(refund.id), str(refund.payment.order_id), refund.status, stripe,
            action, after, note,
        )  # fmt: skip

    try:
        result = provider.fetch_refund(refund_data(refund))
    except ProviderError as exc:
        return diff("?", "unreachable" if exc.kind == "transient" else "error", note=str(exc))
    stripe_state = result.raw_status or str(result.outcome)
    if refund.status in AGREEING_REFUND.get(result.outcome, set()):
        return None
    if (
        refund.status == RefundStatus.PENDING
        and not refund.provider_reference
        and result.error_code == "refund_not_found"
    ):
        # Never answered by Stripe: it may be in flight, or its sender died. Failing it here
        # would make its amount refundable again while it could still succeed; the refund
        # sweeper (payments.sweep_pending_refunds) asks again and re-sends it under the same
        # idempotency key.
        return None
    if result.outcome == Outcome.UNKNOWN:
        return diff(stripe_state, "error", note="unrecognised refund status")
    moved = refund_apply_result(refund_id=refund.id, result=result, actor=actor)
    if moved.status in AGREEING_REFUND.get(result.outcome, set()):
        return diff(stripe_state, "applied", after=moved.status)
    payment_flag_for_review(
        payment_id=refund.payment_id,
        reason="stripe_refund_differs",
        actor=actor,
        details={"refund_id": str(refund.id), "local": moved.status, "stripe": stripe_state},
    )
    return diff(stripe_state, "flagged")
