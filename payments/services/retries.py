"""The retry policy: what happens to a payment that failed or whose outcome is unknown.

Failures are classified by ``provider_data["failure_kind"]`` (``FailureKind``):

* ``transient`` (timeout, 5xx, RPC error): retried automatically. A failed attempt is never
  revived (``failed`` is terminal in the state machine and its provider idempotency key is
  spent); the retry is a NEW attempt, made by ``payment_retry`` (``retry_of`` links it) and
  started at once with ``payment_start``. Attempt ``n`` waits ``retry_delay(n)``: exponential
  backoff with jitter. ``attempts`` on a payment counts the automatic retries that led to it;
  once it reaches ``RETRY_MAX_ATTEMPTS`` the automatic path stops (``retry_exhausted``), an
  audit row and ``payment_retry_exhausted`` announce it, and the buyer may still retry.
* ``needs_buyer`` (declined, insufficient funds, authentication, wrong amount): never retried
  blindly; the buyer is told (``payment_status_changed`` to ``failed``) and ``payment_retry``
  stays open to them, with the same or another method.
* ``final`` (fraud, cancelled): never retried automatically.
* ``unknown`` status (a call timed out): reconciled FIRST. ``fetch_payment`` asks the provider
  and ``payment_apply_result`` applies its answer; only an answer of ``failed`` with a
  transient kind leads to a retry, on a later pass. A provider that cannot answer leaves the
  payment unknown, to be asked again with backoff; after ``RETRY_MAX_ATTEMPTS`` questions it
  is flagged for staff review (and still asked, at the longest delay).

Never a second charge for one order: an automatic retry runs only under the order's row lock,
only for the order's latest payment, and only while no payment of the order is pending,
processing, unknown, or has taken money.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common.errors import DomainError
from common.logcontext import log_context
from orders.audit import Actor, record_event
from orders.models import PAYABLE_STATES
from orders.services import order_lock
from payments.models import UNSUCCESSFUL_STATES, PaymentStatus, PaymentTransaction
from payments.providers.base import FailureKind, Outcome, ProviderError, ProviderResult
from payments.providers.registry import get_provider
from payments.services.core import lock_payment, payment_data, payment_flag, payment_get
from payments.services.payments import payment_apply_result, payment_retry, payment_start
from payments.signals import announce, payment_retry_exhausted

logger = logging.getLogger(__name__)
P = PaymentStatus
JOB = "payments.retry_failed_payments"
#: A retry attempt created but not started (the worker died in between) is started again
#: after this long.
UNSTARTED_AFTER = timedelta(minutes=2)


def retry_delay(attempt: int, *, rng: random.Random | None = None) -> timedelta:
    """Wait before automatic attempt ``attempt`` (1-based): ``base * 2**(attempt-1)`` capped at
    ``RETRY_MAX_DELAY``, then "equal jitter" (between half and all of it), so that payments
    that failed together in an outage do not all come back in the same second."""
    base = settings.RETRY_BASE_DELAY.total_seconds()
    cap = settings.RETRY_MAX_DELAY.total_seconds()
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return timedelta(seconds=delay / 2 + (rng or random).uniform(0, delay / 2))


@dataclass
class RetryReport:
    reconciled: list[str] = field(default_factory=list)
    still_unknown: list[str] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)  # the new attempts' ids
    exhausted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in vars(self).items()}


def _kind(payment: PaymentTransaction) -> str:
    return str(payment.provider_data.get("failure_kind", ""))


# --- outcome unknown: reconcile first -------------------------------------------------------
def payment_reconcile(*, payment_id: UUID, actor: Actor, now: datetime | None = None) -> str:
    """Ask the provider what became of an ``unknown`` payment and apply the answer.
    Returns the payment's status afterwards."""
    now = now or timezone.now()
    payment = payment_get(payment_id)
    if payment.status != P.UNKNOWN:
        return payment.status
    try:
        result = get_provider(payment.provider).fetch_payment(payment_data(payment))
    except ProviderError as exc:  # unavailable, or an answer that says nothing of the outcome
        logger.warning("reconcile of %s failed: %s", payment.id, exc)
        result = ProviderResult(Outcome.UNKNOWN, error_code=exc.code)
    if result.outcome == Outcome.UNKNOWN:
        _reconcile_later(payment.id, actor=actor, now=now)
        return P.UNKNOWN
    payment = payment_apply_result(
        payment_id=payment.id, result=result, actor=actor, details={"reconciled": True}
    )
    # Answered: the reconcile schedule ends; a failure gets its own retry schedule next.
    PaymentTransaction.objects.filter(pk=payment.id).exclude(status=P.UNKNOWN).update(
        next_retry_at=None
    )
    return payment.status


def _reconcile_later(payment_id: UUID, *, actor: Actor, now: datetime) -> None:
    with transaction.atomic():
        _, payment = lock_payment(payment_id)
        asked = int(payment.provider_data.get("reconcile_attempts", 0)) + 1
        payment.provider_data = {**payment.provider_data, "reconcile_attempts": asked}
        payment.next_retry_at = now + retry_delay(min(asked, settings.RETRY_MAX_ATTEMPTS))
        payment.save(update_fields=["provider_data", "next_retry_at", "updated_at"])
        if asked >= settings.RETRY_MAX_ATTEMPTS:
            payment_flag(payment, "outcome_unknown", actor=actor, details={"asked": asked})


# --- transient failures: schedule, then retry on a new attempt ------------------------------
def _schedule(payment_id: UUID, *, actor: Actor, now: datetime) -> str:
    """Give a failed transient payment its retry time, or end the automatic path."""
    with transaction.atomic():
        _, payment = lock_payment(payment_id)
        if (
            payment.status != P.FAILED
            or _kind(payment) != FailureKind.TRANSIENT
            or payment.next_retry_at is not None
            or payment.provider_data.get("retry_exhausted")
        ):
            return "skipped"
        if payment.attempts >= settings.RETRY_MAX_ATTEMPTS:
            payment.provider_data = {**payment.provider_data, "retry_exhausted": True}
            payment.save(update_fields=["provider_data", "updated_at"])
            record_event(
                order_id=payment.order_id,
                entity="payment",
                action="retry_exhausted",
                actor=actor,
                from_state=payment.status,
                to_state=payment.status,
                payment_id=payment.id,
                details={"attempts": payment.attempts},
            )
            pid, oid, attempts = payment.id, payment.order_id, payment.attempts
            transaction.on_commit(
                lambda: announce(
                    payment_retry_exhausted,
                    sender=PaymentTransaction,
                    payment_id=pid,
                    order_id=oid,
                    attempts=attempts,
                ),
                robust=True,
            )
            return "exhausted"
        payment.next_retry_at = now + retry_delay(payment.attempts + 1)
        payment.save(update_fields=["next_retry_at", "updated_at"])
        return "scheduled"


def payment_auto_retry(
    *, payment_id: UUID, actor: Actor, now: datetime | None = None
) -> PaymentTransaction | None:
    """Retry a failed transient payment whose time has come: a new attempt, started now.
    Returns the new attempt, or None when the retry must not (or need not) happen."""
    now = now or timezone.now()
    with transaction.atomic():
        order_id = (
            PaymentTransaction.objects.filter(pk=payment_id).values_list("order_id", flat=True)
        ).first()
        if order_id is None:
            return None
        order = order_lock(order_id)
        payments = list(
            PaymentTransaction.objects.select_for_update()
            .filter(order_id=order.id)
            .order_by("created_at")
        )
        payment = next(p for p in payments if p.id == payment_id)
        if (
            payment.status != P.FAILED
            or _kind(payment) != FailureKind.TRANSIENT
            or payment.next_retry_at is None
            or payment.next_retry_at > now
        ):
            return None  # another pass took it, or it is not due
        payment.next_retry_at = None
        payment.save(update_fields=["next_retry_at", "updated_at"])
        blockers = [str(p.id) for p in payments if p.status not in UNSUCCESSFUL_STATES]
        if blockers or payments[-1].id != payment.id or order.status not in PAYABLE_STATES:
            record_event(
                order_id=order.id,
                entity="payment",
                action="retry_skipped",
                actor=actor,
                payment_id=payment.id,
                details={"blocking_payments": blockers, "order_status": order.status},
            )
            return None
        # payment_retry + _start rather than payment_retry_start: the new attempt commits
        # together with the claim of this due retry (next_retry_at cleared, attempts counted).
        attempt = payment_retry(order_id=order.id, actor=actor)
        attempt.attempts = payment.attempts + 1
        attempt.provider_data = {**attempt.provider_data, "auto_retry": True}
        attempt.save(update_fields=["attempts", "provider_data", "updated_at"])
    _start(attempt.id, actor=actor)
    return attempt


def _start(payment_id: UUID, *, actor: Actor) -> None:
    try:
        payment_start(payment_id=payment_id, actor=actor)
    except DomainError as exc:  # the payment row already says what happened (unknown/failed)
        logger.warning("automatic attempt %s did not start: %s", payment_id, exc)


# --- one pass -------------------------------------------------------------------------------
def retry_pass(*, now: datetime | None = None, limit: int = 500) -> RetryReport:
    """One pass of the policy; safe to run twice or concurrently (every step re-checks under
    the row locks)."""
    now = now or timezone.now()
    actor = Actor.for_job(JOB)
    report = RetryReport()
    due = Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)

    for pid in _ids(PaymentTransaction.objects.filter(due, status=P.UNKNOWN), limit):
        with log_context(payment_id=pid):
            status = payment_reconcile(payment_id=pid, actor=actor, now=now)
        (report.still_unknown if status == P.UNKNOWN else report.reconciled).append(str(pid))

    unscheduled = PaymentTransaction.objects.filter(
        status=P.FAILED,
        provider_data__failure_kind=FailureKind.TRANSIENT.value,
        next_retry_at__isnull=True,
    ).exclude(provider_data__has_key="retry_exhausted")
    for pid in _ids(unscheduled, limit):
        outcome = _schedule(pid, actor=actor, now=now)
        getattr(report, outcome).append(str(pid))

    ready = PaymentTransaction.objects.filter(
        status=P.FAILED,
        provider_data__failure_kind=FailureKind.TRANSIENT.value,
        next_retry_at__lte=now,
    )
    for pid in _ids(ready, limit):
        with log_context(payment_id=pid):
            attempt = payment_auto_retry(payment_id=pid, actor=actor, now=now)
        (report.retried if attempt else report.skipped).append(
            str(attempt.id) if attempt else str(pid)
        )

    unstarted = PaymentTransaction.objects.filter(
        status=P.PENDING,
        provider_data__has_key="auto_retry",
        provider_status="",
        created_at__lte=now - UNSTARTED_AFTER,
    )
    for pid in _ids(unstarted, limit):
        _start(pid, actor=actor)
        report.started.append(str(pid))
    return report


def _ids(queryset, limit: int) -> list[UUID]:  # type: ignore[no-untyped-def]
    return list(
        queryset.order_by("next_retry_at", "created_at").values_list("id", flat=True)[:limit]
    )
