"""Many payments moved at once, set-based: the chain monitor's hot path (thousands of payments
seen mined, or confirmed, in one pass).

The same transitions, audit rows, order sync rule and announcements as ``payment_apply_result``
(one at a time), in a few statements per chunk: the orders and then the payments locked in two
queries (the same order as ``lock_payment``: orders first), the transitions run in memory,
payments and orders written with one statement each, the audit rows with one ``bulk_create``,
the payment-status cache invalidated in one round trip, and the announcements (emails,
receipts) sent by one task per chunk. Only the plain case takes
this path: an open payment moving to ``processing``, ``partially_paid`` or ``confirmed`` with
nothing to flag, on an
order it does not overpay, not cancelled, below the high-value threshold, one move per order.
Everything else is returned to the caller for the one-at-a-time service, which flags and
decides what is unusual.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from celery import current_app
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from common.db import bulk_update_rows
from common.errors import InvalidTransition
from common.money import add
from orders.audit import Actor, event_row, run_transition
from orders.models import Order, OrderPaymentEvent
from payments.models import (
    OPEN_STATES,
    PAID_STATES,
    PaymentStatus,
    PaymentTransaction,
    Refund,
)
from payments.selectors import payment_status_invalidate_many, summarize
from payments.services.core import RESULT_FIELDS, payment_announcement, unexpected_money
from payments.services.sync import order_stage, order_sync_plan, order_target_status

logger = logging.getLogger(__name__)
P = PaymentStatus
#: the payment transitions this path runs, and the state each leads to
MOVES = {
    "start_processing": P.PROCESSING,
    "receive_part": P.PARTIALLY_PAID,
    "confirm": P.CONFIRMED,
}


@dataclass(frozen=True)
class Move:
    """One payment's transition with what the provider said (as ``ProviderResult`` carries)."""

    payment_id: UUID
    transition: str  # a key of MOVES
    raw_status: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def payments_move_many(moves: Sequence[Move], *, actor: Actor) -> list[Move]:
    """Apply ``moves`` in one transaction; returns the ones left for ``payment_apply_result``
    (not plain: see the module's docstring). A move whose payment is already where it leads is
    dropped (applied before: re-runs change nothing)."""
    if not moves:
        return []
    for m in moves:
        if m.transition not in MOVES or set(m.fields) - RESULT_FIELDS:
            raise ValueError(f"not a set-based move: {m}")
    with transaction.atomic():
        order_ids = set(
            PaymentTransaction.objects.filter(id__in=[m.payment_id for m in moves]).values_list(
                "order_id", flat=True
            )
        )
        orders = {
            o.id: o
            for o in Order.objects.select_for_update().filter(id__in=order_ids).order_by("id")
        }
        rows = PaymentTransaction.objects.select_for_update().filter(order_id__in=order_ids)
        if not any(m.data for m in moves):
            rows = rows.defer("provider_data")  # kilobytes a row, neither read nor written
        payments = {p.id: p for p in rows.order_by("id")}
        by_order: dict[UUID, list[PaymentTransaction]] = defaultdict(list)
        for p in payments.values():
            by_order[p.order_id].append(p)
        refunds: dict[UUID, list[Refund]] = defaultdict(list)
        for r in Refund.objects.filter(payment__order_id__in=order_ids).select_related("payment"):
            refunds[r.payment.order_id].append(r)
        now = timezone.now()
        left: list[Move] = []
        events: list[OrderPaymentEvent] = []
        moved: list[tuple[PaymentTransaction, str]] = []
        touched_orders: dict[UUID, set[str]] = {}
        taken: set[UUID] = set()
        payment_fields: set[str] = {"status", "provider_status", "updated_at"}
        for m in moves:
            found = payments.get(m.payment_id)
            if found is None:
                continue
            p = found
            if p.status == MOVES[m.transition] or (
                m.transition == "confirm" and p.status in PAID_STATES
            ):
                continue  # applied before
            order = orders[p.order_id]
            if p.order_id in taken or not _plain(m, p, order, by_order[p.order_id]):
                left.append(m)
                continue
            payment_was, order_was = dict(p.__dict__), dict(order.__dict__)
            order_fields_was = model_to_dict(order)
            try:
                before, after = run_transition(p, m.transition, entity="payment")
                summary = summarize(by_order[p.order_id], refunds[p.order_id])
                target = order_target_status(
                    order.status, order.amount, summary, order_stage(order)
                )
                steps = order_sync_plan(order.status, target) if target != order.status else []
                order_steps = [
                    (name, *run_transition(order, name, args=args, entity="order"))
                    for name, args in steps
                ]
            except InvalidTransition:
                p.__dict__.update(payment_was)
                order.__dict__.update(order_was)
                left.append(m)
                continue
            taken.add(p.order_id)
            for name, value in m.fields.items():
                setattr(p, name, value)
            payment_fields |= set(m.fields)
            if m.raw_status:
                p.provider_status = m.raw_status[:64]
            if m.data:
                p.provider_data = {**p.provider_data, **m.data}
                payment_fields.add("provider_data")
            p.updated_at = now
            if m.transition == "confirm":
                payment_fields |= {
                    "confirmed_at",
                    "failure_code",
                    "failure_reason",
                    "next_retry_at",
                }
            info = {"provider_status": m.raw_status, **m.details}
            events.append(
                event_row(
                    order_id=p.order_id,
                    entity="payment",
                    action=m.transition,
                    actor=actor,
                    from_state=before,
                    to_state=after,
                    payment_id=p.id,
                    details=info,
                )
            )
            moved.append((p, before))
            if order_steps:
                changed = {
                    k for k, v in model_to_dict(order).items() if order_fields_was.get(k) != v
                }
                touched_orders.setdefault(order.id, set()).update(changed)
                for name, was, now_state in order_steps:
                    events.append(
                        event_row(
                            order_id=order.id,
                            entity="order",
                            action=name,
                            actor=actor,
                            from_state=was,
                            to_state=now_state,
                            details={"payment_id": str(p.id)},
                        )
                    )
        if moved:
            bulk_update_rows(PaymentTransaction, [p for p, _ in moved], sorted(payment_fields))
        if touched_orders:
            order_fields = set().union(*touched_orders.values()) | {"status"}
            changed_orders = [orders[oid] for oid in touched_orders]
            for o in changed_orders:
                o.updated_at = now
            order_fields.add("updated_at")
            bulk_update_rows(Order, changed_orders, sorted(order_fields))
        OrderPaymentEvent.objects.bulk_create(events, batch_size=1000)
        if moved:
            moved_orders = sorted({str(p.order_id) for p, _ in moved})
            transaction.on_commit(lambda: payment_status_invalidate_many(moved_orders), robust=True)
            announced = [[str(p.id), str(p.order_id), before, str(p.status)] for p, before in moved]
            transaction.on_commit(lambda: _announce(announced, actor.type), robust=True)
    return left


def _plain(
    m: Move, p: PaymentTransaction, order: Order, siblings: list[PaymentTransaction]
) -> bool:
    """Whether the move needs nothing the one-at-a-time service would decide or flag."""
    if p.status not in OPEN_STATES:
        return False  # late money (expired, failed, cancelled) is flagged there
    if m.transition != "confirm":
        return True
    paid = add(*(s.amount for s in siblings if s.status in PAID_STATES), p.amount)
    return not unexpected_money(p, p.status, order, paid)


def _announce(moves: list[list[str]], actor_type: str) -> None:
    """Emails and receipts for the moved payments: one task announces a chunk from a worker,
    so a pass does not pay a broker round trip per payment. A broker that refuses it: they
    are announced here, as one at a time would, so none is lost."""
    try:
        current_app.tasks["payments.announce_payments"].delay(moves, actor_type)
    except Exception:
        logger.warning("announce task not enqueued; announcing %s payments here", len(moves))
        for payment_id, order_id, before, after in moves:
            payment_announcement(UUID(payment_id), UUID(order_id), before, after, actor_type)
