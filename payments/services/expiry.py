"""Sweepers run by beat: they find work whose on-commit enqueue was lost, and close what
has expired. Each is safe to run twice or concurrently."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common.errors import DomainError
from common.logcontext import log_context
from orders.audit import Actor
from payments.models import (
    IdempotencyKey,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    RefundStatus,
    WebhookEvent,
)
from payments.providers.base import Outcome, ProviderError, ProviderUnavailableError
from payments.providers.registry import get_provider
from payments.services.core import (
    lock_payment,
    payment_data,
    payment_flag,
    payment_get,
    payment_transition,
    refund_data,
)
from payments.services.payments import payment_apply_result
from payments.services.refunds import refund_apply_result, refund_send

logger = logging.getLogger(__name__)
P = PaymentStatus


def webhook_events_to_sweep(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Events stored but not processed ``WEBHOOK_SWEEP_AFTER`` after arrival (their enqueue
    was lost, or the worker died), and failed events whose next attempt is due."""
    now = now or timezone.now()
    stale = Q(
        status=WebhookEvent.Status.RECEIVED, received_at__lte=now - settings.WEBHOOK_SWEEP_AFTER
    )
    due = Q(
        status=WebhookEvent.Status.FAILED,
        next_attempt_at__lte=now,
        attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
    )
    return list(
        WebhookEvent.objects.filter(stale | due)
        .order_by("received_at")
        .values_list("id", flat=True)[:limit]
    )


def payment_expire(*, payment_id: UUID, actor: Actor, now: datetime | None = None) -> str:
    """Close a pending payment past its ``expires_at``: with the provider first (so a card
    payment cannot succeed later beside a new attempt), then locally. A provider that reports
    money moving wins: its result is applied instead."""
    now = now or timezone.now()
    payment = payment_get(payment_id)
    expirable = (P.PENDING, P.PARTIALLY_PAID)
    if payment.status not in expirable or payment.expires_at is None or payment.expires_at > now:
        return payment.status
    provider = get_provider(payment.provider)
    try:
        result = provider.cancel_payment(payment_data(payment))
    except ProviderUnavailableError:
        return payment.status  # the next pass asks again
    except ProviderError:
        try:  # cannot cancel (e.g. it succeeded meanwhile): read what it is
            result = provider.fetch_payment(payment_data(payment))
        except ProviderError:
            return payment.status
    if result.outcome in (Outcome.SUCCEEDED, Outcome.PROCESSING):
        return payment_apply_result(
            payment_id=payment.id, result=result, actor=actor, details={"at_expiry": True}
        ).status
    with transaction.atomic():
        _, payment = lock_payment(payment.id)
        if payment.status in expirable:
            partly = payment.status == P.PARTIALLY_PAID
            details = {
                "expires_at": payment.expires_at.isoformat() if payment.expires_at else None,
                "provider_status": result.raw_status,
            }
            payment_transition(payment, "expire", actor=actor, details=details)
            if partly:  # money arrived and waits at its deposit address: staff return it
                payment_flag(
                    payment,
                    "partial_payment_expired",
                    actor=actor,
                    details=details | {"received_base_units": str(payment.received_base_units)},
                )
    return payment.status


def payments_expire_stale(*, now: datetime | None = None, limit: int = 500) -> list[str]:
    now = now or timezone.now()
    actor = Actor.for_job("payments.expire_stale_payments")
    ids = (
        PaymentTransaction.objects.filter(
            status__in=(P.PENDING, P.PARTIALLY_PAID), expires_at__lte=now
        )
        .order_by("expires_at")
        .values_list("id", flat=True)[:limit]
    )
    expired = []
    for pid in list(ids):
        with log_context(payment_id=pid):
            try:
                if payment_expire(payment_id=pid, actor=actor, now=now) == P.EXPIRED:
                    expired.append(str(pid))
            except Exception:  # one bad row never stops the sweep
                logger.exception("could not expire payment %s", pid)
    return expired


def refund_sweep_pending(*, refund_id: UUID, actor: Actor, idle_since: datetime) -> str:
    """A refund left pending without a provider reference (the process died between the
    commit and the call, or during the call): ask the provider whether it holds it (by the
    refund's idempotency key / metadata) and apply what it says; if it holds nothing, send it.
    Returns what was done."""
    refund = Refund.objects.select_related("payment__order__buyer").get(pk=refund_id)
    if (
        refund.status != RefundStatus.PENDING
        or refund.provider_reference
        or refund.updated_at > idle_since
    ):
        return "skipped"
    try:
        found = get_provider(refund.payment.provider).fetch_refund(refund_data(refund))
    except ProviderError as exc:
        logger.warning("pending refund %s: the provider did not answer: %s", refund_id, exc)
        return "unreachable"
    if found.reference or found.outcome == Outcome.SUCCEEDED:
        refund_apply_result(refund_id=refund.id, result=found, actor=actor)
        return "reconciled"
    try:
        refund_send(refund_id=refund.id, actor=actor, resume_idle_since=idle_since)
    except DomainError as exc:  # refused (the row says so), already sent, or unavailable
        logger.warning("pending refund %s was not sent: %s", refund_id, exc)
        return "not_sent"
    return "sent"


def refunds_sweep_pending(*, now: datetime | None = None, limit: int = 200) -> dict[str, str]:
    """Pending refunds with no provider reference, untouched for ``REFUND_SWEEP_AFTER``."""
    now = now or timezone.now()
    actor = Actor.for_job("sweep_pending_refunds")
    idle_since = now - settings.REFUND_SWEEP_AFTER
    ids = (
        Refund.objects.filter(
            status=RefundStatus.PENDING,
            provider_reference__isnull=True,
            updated_at__lte=idle_since,
        )
        .order_by("updated_at")
        .values_list("id", "payment_id")[:limit]
    )
    done = {}
    for rid, pid in list(ids):
        with log_context(payment_id=pid):
            done[str(rid)] = refund_sweep_pending(refund_id=rid, actor=actor, idle_since=idle_since)
    return done


def idempotency_keys_cleanup(*, older_than: timedelta | None = None) -> int:
    """Delete keys older than the retention (``IDEMPOTENCY_KEY_TTL_HOURS``, at least 24 h)."""
    age = older_than or timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - age).delete()
    return deleted
