"""Reads on payments: the rules the services enforce, shared with what the API shows, and the
cached payment status of an order (its serialised payload, as JSON).

``payment_retry_blocked`` and ``payment_refund_candidate`` are the one place the retry and
refund rules live: ``payments.services`` enforces them, the API derives ``can_retry`` and
``can_refund`` from them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction

from common.errors import NotFound
from common.money import add, sub
from orders.models import PAYABLE_STATES, Order
from payments.models import (
    OPEN_STATES,
    PAID_STATES,
    REFUNDABLE_STATES,
    UNSUCCESSFUL_STATES,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    RefundStatus,
)
from payments.providers.base import FailureKind
from payments.signals import order_payments_changed


# --- an order's payments in figures (the sync rule and payment-status both read these) ----
@dataclass(frozen=True)
class PaymentSummary:
    paid_total: Decimal = Decimal(0)  # payments that reached a paid state
    refunded_total: Decimal = Decimal(0)  # succeeded refunds
    pending_refund_total: Decimal = Decimal(0)  # refunds requested, not settled
    open_attempts: int = 0
    failed_attempts: int = 0
    disputed: bool = False
    all_settled: bool = False  # every paid payment is completed (escrow released)


def summarize(payments: Iterable[PaymentTransaction], refunds: Iterable[Refund]) -> PaymentSummary:
    payments = list(payments)
    refunds = list(refunds)
    paid = [p for p in payments if p.status in PAID_STATES]
    return PaymentSummary(
        paid_total=add(*(p.amount for p in paid)),
        refunded_total=add(*(r.amount for r in refunds if r.status == RefundStatus.SUCCEEDED)),
        pending_refund_total=add(
            *(r.amount for r in refunds if r.status in (RefundStatus.PENDING, RefundStatus.UNKNOWN))
        ),
        open_attempts=sum(p.status in OPEN_STATES for p in payments),
        failed_attempts=sum(p.status in UNSUCCESSFUL_STATES for p in payments),
        disputed=any(p.status == PaymentStatus.DISPUTED for p in payments),
        all_settled=bool(paid) and all(p.status == PaymentStatus.COMPLETED for p in paid),
    )


# --- rules shared with the services -----------------------------------------------------------
def payment_failure_kind(payment: PaymentTransaction) -> str:
    return str((payment.provider_data or {}).get("failure_kind", ""))


def payment_retry_blocked(
    order_status: str, payments: Sequence[PaymentTransaction], method: str | None = None
) -> bool:
    """Whether a new attempt is refused: only the last attempt failing, expiring or being
    cancelled on a payable order allows one; a final failure allows only another method.
    ``payments`` are the order's attempts, oldest first."""
    last = payments[-1] if payments else None
    return (
        last is None
        or last.status not in UNSUCCESSFUL_STATES
        or order_status not in PAYABLE_STATES
        or (
            payment_failure_kind(last) == FailureKind.FINAL
            and (method or last.method) == last.method
        )
    )


def payment_refund_candidate(
    payments: Iterable[PaymentTransaction],
) -> PaymentTransaction | None:
    """The payment a refund without ``transaction_id`` draws on: the one with the most left to
    refund (the newest on a tie); None when no payment is in a refundable state."""
    refundable = [p for p in payments if p.status in REFUNDABLE_STATES]
    return max(refundable, key=lambda p: (p.refundable_amount, p.created_at), default=None)


def payment_refund_allowed(payments: Iterable[PaymentTransaction]) -> bool:
    """Whether a refund without an amount would be accepted (something is left to refund)."""
    candidate = payment_refund_candidate(payments)
    return candidate is not None and candidate.refundable_amount > 0


def order_paid_total(payments: Iterable[PaymentTransaction]) -> Decimal:
    """The exact sum of the payments that were paid (at the money module's precision)."""
    return add(*(p.amount for p in payments if p.status in PAID_STATES))


def order_outstanding_amount(order: Order, payments: Iterable[PaymentTransaction]) -> Decimal:
    """What the buyer still has to pay: the order's amount less the payments that were paid."""
    return sub(order.amount, order_paid_total(payments))


# --- the payment status of an order (cached) -------------------------------------------------
@dataclass(frozen=True)
class PaymentStatusView:
    """What GET payment-status shows, before the caller's own permissions are applied."""

    payments: list[PaymentTransaction]
    total_paid: Decimal
    total_refunded: Decimal
    outstanding_amount: Decimal
    retryable: bool
    refundable: bool
    receipts: list[dict[str, Any]] = field(default_factory=list)


def _version_key(order_id: UUID | str) -> str:
    return f"payment-status:version:{order_id}"


#: The format of a cached entry. Part of its key, so that entries written by another release
#: (older releases stored pickled model instances) are never read.
PAYLOAD_FORMAT = "json1"


def _data_key(order_id: UUID | str, version: int) -> str:
    return f"payment-status:{PAYLOAD_FORMAT}:{order_id}:{version}"


def payment_status_version(order_id: UUID | str) -> int:
    """The cache generation of an order's payment status. A missing counter starts from the
    clock, so an evicted counter never brings back an older generation's entry."""
    key = _version_key(order_id)
    version = cache.get(key)
    if version is None:
        cache.add(key, time.time_ns(), timeout=None)
        version = cache.get(key)
    return int(version or 0)


def payment_status_invalidate(order_id: UUID | str) -> None:
    """Start a new cache generation: every reader after this call reads the database."""
    key = _version_key(order_id)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, time.time_ns(), timeout=None)


def payment_status_invalidate_many(order_ids: Iterable[UUID | str]) -> None:
    """``payment_status_invalidate`` for many orders in one round trip: each counter is set
    to a new generation from the clock (distinct per order and call)."""
    base = time.time_ns()
    versions = {_version_key(oid): base + i for i, oid in enumerate(order_ids)}
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # one MSET, without the per-key memcached-compatibility check of ``set_many`` (our
        # keys are a prefix and a UUID), which cost more than the round trip for a pass's
        # thousands of orders
        backend._cache.set_many({backend.make_key(k): v for k, v in versions.items()}, None)
    else:
        cache.set_many(versions, timeout=None)


def payment_status_invalidate_on_commit(order_id: UUID | str) -> None:
    transaction.on_commit(lambda: payment_status_invalidate(order_id), robust=True)


def payment_status_cached(
    order_id: UUID | str, build: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The order's payment-status payload from the cache of its current generation, or
    ``build()`` stored there. The generation is read before ``build`` reads the database, so a
    payload computed while a change commits is stored under the old generation and never served
    after it.

    The entry is JSON text: ``build`` returns plain JSON data (dicts, lists, strings, numbers,
    booleans, None), never model instances, so an entry outlives no model change and a hit
    costs one ``json.loads`` whatever the number of payments. Anything else raises TypeError.
    """
    key = _data_key(order_id, payment_status_version(order_id))
    cached = cache.get(key)
    if isinstance(cached, str):
        return json.loads(cached)
    payload = build()
    cache.set(
        key,
        json.dumps(payload, separators=(",", ":")),
        timeout=settings.PAYMENT_STATUS_CACHE_SECONDS,
    )
    return payload


def payment_status_for_order(order: Order, *, receipts_loader: Any = None) -> PaymentStatusView:
    """The order's payments, totals and receipts in a fixed number of queries (uncached: the
    API caches its serialised answer with ``payment_status_cached``).

    ``receipts_loader(order_id) -> list[dict]`` is given by the caller (receipts are read by the
    composition root: payments never imports receipts)."""
    payments = list(PaymentTransaction.objects.filter(order_id=order.id).order_by("created_at"))
    refunds = list(Refund.objects.filter(payment__order_id=order.id))
    summary = summarize(payments, refunds)
    return PaymentStatusView(
        payments=payments,
        total_paid=summary.paid_total,
        total_refunded=summary.refunded_total,
        outstanding_amount=max(order_outstanding_amount(order, payments), Decimal(0)),
        retryable=not payment_retry_blocked(order.status, payments),
        refundable=payment_refund_allowed(payments),
        receipts=list(receipts_loader(order.id)) if receipts_loader else [],
    )


def _invalidate_from_signal(sender: Any, order_id: UUID | str, **kwargs: Any) -> None:
    payment_status_invalidate(order_id)


def _invalidate_on_order_save(sender: Any, instance: Order, **kwargs: Any) -> None:
    payment_status_invalidate_on_commit(instance.pk)


def connect_cache_invalidation() -> None:
    """Called from the app's ready(): ``order_payments_changed`` (sent on commit by payments,
    refunds and receipts) and every saved order start a new cache generation."""
    from django.db.models.signals import post_save

    order_payments_changed.connect(_invalidate_from_signal, dispatch_uid="payment-status-cache")
    post_save.connect(_invalidate_on_order_save, sender=Order, dispatch_uid="payment-status-order")


# --- who may do what ------------------------------------------------------------------------
def user_may_pay(user: Any, order: Order) -> bool:
    """The buyer pays, retries and reports transactions; staff may act for them."""
    return bool(user.is_staff or order.buyer_id == user.pk)


def user_may_refund(user: Any, order: Order) -> bool:
    """The order's seller, or staff holding ``payments.refund_payment``."""
    return bool(order.seller_id == user.pk or staff_may_refund(user))


def staff_may_refund(user: Any) -> bool:
    """Staff holding ``payments.refund_payment``: they refund any order and, as the arbiter,
    resolve disputes (the admin's actions ask the same permission)."""
    return bool(user.is_staff and user.has_perm("payments.refund_payment"))


def user_may_update_status(user: Any) -> bool:
    """Staff or a service account holding ``payments.update_payment_status`` (superusers
    hold every permission): being staff alone is not enough to move money's state."""
    return bool(user.is_active and user.has_perm("payments.update_payment_status"))


def payment_get_for_user(user: Any, payment_id: UUID | str) -> PaymentTransaction:
    """The payment if ``user`` may see its order (parties and staff, as for orders) or may set
    payment statuses (a service account); otherwise ``NotFound``, never revealing that it
    exists."""
    from django.core.exceptions import ValidationError
    from django.db.models import Q

    qs = PaymentTransaction.objects.select_related("order")
    if not (user.is_staff or user_may_update_status(user)):
        qs = qs.filter(Q(order__buyer=user) | Q(order__seller=user))
    try:
        return qs.get(pk=payment_id)
    except (PaymentTransaction.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("Payment not found.", code="payment_not_found") from None
