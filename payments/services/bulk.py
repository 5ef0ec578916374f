"""Many payments moved at once, set-based: the chain monitor's hot path (thousands of payments
seen mined, or confirmed, in one pass).

The same transitions, audit rows, order sync rule and announcements as ``payment_apply_result``
(one at a time), in a few statements per chunk, with no model instance per row: the orders and
then the payments locked and read as tuples in two queries (the same order as
``lock_payment``: orders first), the payments' new values copied to the database and applied by
one UPDATE, the orders updated with one statement per kind of change, the audit rows copied in
one COPY, the payment-status cache invalidated in one round trip, and the announcements
(emails, receipts) sent by one task per chunk.

Each state change is still the model's django-fsm transition: it runs on a probe instance in
the row's state (``transition_changes``), which decides whether it is allowed and what it sets,
and those values are written to every row moving from that state (only transitions whose
effect depends on nothing but the source state take this path: no conditions, no reading of
other fields).

Only the plain case takes this path: an open payment moving to ``processing``,
``partially_paid`` or ``confirmed`` with nothing to flag, on an order it does not overpay, not
cancelled, below the high-value threshold, one move per order, whose order moves (if at all)
by ``start_payment`` or ``mark_paid``. Everything else is returned to the caller for the
one-at-a-time service, which flags and decides what is unusual.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from celery import current_app
from django.db import models, transaction
from django.db.models import Subquery
from django.utils import timezone

from common.db import update_rows
from common.errors import InvalidTransition
from common.money import add
from orders.audit import Actor, event_values, record_events, run_transition
from orders.models import Order
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
#: the order transitions a plain move may call for (their effect depends on the source state
#: only); any other order change goes one at a time
ORDER_MOVES = frozenset({"start_payment", "mark_paid"})


@dataclass(frozen=True)
class Move:
    """One payment's transition with what the provider said (as ``ProviderResult`` carries)."""

    payment_id: UUID
    transition: str  # a key of MOVES
    raw_status: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Payment:
    """What the rules read of a payment (``summarize``, ``unexpected_money``)."""

    id: UUID
    order_id: UUID
    status: str
    amount: Decimal
    currency: str


@dataclass
class _Order:
    """What the rules read of an order (``order_stage``, ``order_target_status``)."""

    id: UUID
    status: str
    amount: Decimal
    currency: str
    shipped_at: Any
    delivered_at: Any
    completed_at: Any
    cancelled_at: Any


@dataclass
class _Refund:
    status: str
    amount: Decimal


def transition_changes(
    model: type[models.Model], name: str, source: str, args: tuple[Any, ...] = ()
) -> tuple[str, dict[str, Any]]:
    """The state transition ``name`` leads to from ``source`` and the columns it sets (status
    included), from running it on a probe instance; ``InvalidTransition`` where the model
    forbids it. Only for transitions without conditions (their outcome would depend on the
    row)."""
    target, changes = _probe(model, name, source, args)
    now = timezone.now()  # what the transition stamped, stamped now (the probe is cached)
    return target, {k: (now if v is _NOW else v) for k, v in changes.items()}


_NOW = object()


@functools.cache
def _probe(
    model: type[models.Model], name: str, source: str, args: tuple[Any, ...]
) -> tuple[str, dict[str, Any]]:
    method = getattr(model, name)
    if any(t.conditions for t in method._django_fsm.transitions.values()):
        raise ValueError(f"{model.__name__}.{name} has conditions: not a set-based transition")
    probe = model()
    columns = {f.attname for f in model._meta.concrete_fields} - {"status"}
    for attname in columns:  # what the transition assigns (even to a default) replaces these
        probe.__dict__[attname] = _UNSET
    probe.__dict__["status"] = source
    _, target = run_transition(probe, name, entity=model._meta.model_name or "", args=args)
    changes = {
        k: v
        for k, v in probe.__dict__.items()
        if k == "status" or (k in columns and v is not _UNSET)
    }
    # a timestamp the transition took is the time of the move, not of the first probe
    stamped = {k: _NOW for k, v in changes.items() if hasattr(v, "tzinfo") and v is not None}
    return target, {**changes, **stamped}


class _Unsettable:
    """A probe's field before the transition: reading it is a transition that depends on the
    row, which this path must not take."""

    def __bool__(self) -> bool:
        raise TypeError("a set-based transition read a field of the row")

    def __eq__(self, other: object) -> bool:
        raise TypeError("a set-based transition read a field of the row")

    __hash__ = object.__hash__


_UNSET = _Unsettable()


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
        of_moves = PaymentTransaction.objects.filter(id__any=[m.payment_id for m in moves])
        orders = {
            row[0]: _Order(*row)
            for row in Order.objects.select_for_update()
            .filter(id__in=Subquery(of_moves.values("order_id")))
            .order_by("id")
            .values_list(
                "id",
                "status",
                "amount",
                "currency",
                "shipped_at",
                "delivered_at",
                "completed_at",
                "cancelled_at",
            )
        }
        payments = {
            row[0]: _Payment(*row)
            for row in PaymentTransaction.objects.select_for_update()
            .filter(order_id__any=list(orders))
            .order_by("id")
            .values_list("id", "order_id", "status", "amount", "currency")
        }
        by_order: dict[UUID, list[_Payment]] = defaultdict(list)
        for p in payments.values():
            by_order[p.order_id].append(p)
        refunds: dict[UUID, list[_Refund]] = defaultdict(list)
        for payment_id, status, amount in Refund.objects.filter(
            payment_id__any=list(payments)
        ).values_list("payment_id", "status", "amount"):
            refunds[payments[payment_id].order_id].append(_Refund(status, amount))
        left: list[Move] = []
        events: list[dict[str, Any]] = []
        moved: list[tuple[_Payment, Move, str, dict[str, Any]]] = []
        order_groups: dict[tuple[str, tuple[Any, ...]], list[UUID]] = defaultdict(list)
        taken: set[UUID] = set()
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
            before = p.status
            try:
                after, changes = transition_changes(PaymentTransaction, m.transition, before)
                p.status = after  # the order's target counts it
                summary = summarize(
                    cast(list[PaymentTransaction], by_order[p.order_id]),
                    cast(list[Refund], refunds[p.order_id]),
                )
                target = order_target_status(
                    order.status, order.amount, summary, order_stage(cast(Order, order))
                )
                steps = order_sync_plan(order.status, target) if target != order.status else ()
                if any(name not in ORDER_MOVES for name, _ in steps):
                    raise InvalidTransition("an order change for one at a time")
                order_steps, state = [], order.status
                for name, args in steps:
                    now_state, _ = transition_changes(Order, name, state, args)
                    order_steps.append((name, state, now_state))
                    state = now_state
            except InvalidTransition:
                p.status = before
                left.append(m)
                continue
            taken.add(p.order_id)
            moved.append((p, m, before, changes))
            events.append(
                event_values(
                    order_id=p.order_id,
                    entity="payment",
                    action=m.transition,
                    actor=actor,
                    from_state=before,
                    to_state=after,
                    payment_id=p.id,
                    details={"provider_status": m.raw_status, **m.details},
                )
            )
            if order_steps:
                order_groups[(order.status, steps)].append(order.id)
                for name, was, now_state in order_steps:
                    events.append(
                        event_values(
                            order_id=order.id,
                            entity="order",
                            action=name,
                            actor=actor,
                            from_state=was,
                            to_state=now_state,
                            details={"payment_id": str(p.id)},
                        )
                    )
                order.status = state
        _write_payments(moved)
        for (source, steps), order_ids in order_groups.items():
            changes, state = {}, source
            for name, args in steps:
                state, step_changes = transition_changes(Order, name, state, args)
                changes |= step_changes
            changes["updated_at"] = timezone.now()
            Order.objects.filter(id__any=order_ids, status=source).update(**changes)
        record_events(events)
        if moved:
            moved_orders = sorted({str(p.order_id) for p, *_ in moved})
            transaction.on_commit(lambda: payment_status_invalidate_many(moved_orders), robust=True)
            announced = [[str(p.id), str(p.order_id), was, p.status] for p, _, was, _ in moved]
            transaction.on_commit(lambda: _announce(announced, actor.type), robust=True)
    return left


def _write_payments(moved: list[tuple[_Payment, Move, str, dict[str, Any]]]) -> None:
    """The moved payments' new values: what the transition set, what the provider said
    (``fields``, ``provider_status``) and the time; one UPDATE per set of columns (a chunk has
    one or two: confirmations only, or a whole mined position)."""
    now = timezone.now()
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for p, m, _, changes in moved:
        values = changes | m.fields | {"provider_status": m.raw_status[:64], "updated_at": now}
        columns = tuple(sorted(values))
        groups[columns].append((p.id, *(values[c] for c in columns)))
    for columns, rows in groups.items():
        update_rows(PaymentTransaction, columns, rows)


def _plain(m: Move, p: _Payment, order: _Order, siblings: list[_Payment]) -> bool:
    """Whether the move needs nothing the one-at-a-time service would decide or flag."""
    if p.status not in OPEN_STATES:
        return False  # late money (expired, failed, cancelled) is flagged there
    if m.transition != "confirm":
        return True
    paid = add(*(s.amount for s in siblings if s.status in PAID_STATES), p.amount)
    return not unexpected_money(cast(PaymentTransaction, p), p.status, cast(Order, order), paid)


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
