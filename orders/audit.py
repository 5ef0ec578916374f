"""Who did what: the actor of every change, the audit row, and the one way to run a transition.

Every state change in the project goes through ``apply_transition`` (or ``transition_to``),
which runs the django-fsm transition, saves the instance and appends an ``OrderPaymentEvent``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db import models
from django_fsm import TransitionNotAllowed, can_proceed

from common.db import insert_rows
from common.errors import InvalidTransition
from orders.models import ActorType, OrderPaymentEvent


@dataclass(frozen=True)
class Actor:
    """The cause of a change: a user (API), an admin, a webhook, a job or the system."""

    type: str
    user: Any = None
    label: str = ""
    reference: str = ""  # the request id or provider event id behind the change
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_user(cls, user: Any, reference: str = "") -> Actor:
        return cls(
            ActorType.USER, user=user, label=getattr(user, "username", ""), reference=reference
        )

    @classmethod
    def for_admin(cls, user: Any, reference: str = "") -> Actor:
        return cls(
            ActorType.ADMIN, user=user, label=getattr(user, "username", ""), reference=reference
        )

    @classmethod
    def for_webhook(cls, provider: str, event_id: str) -> Actor:
        return cls(ActorType.WEBHOOK, label=provider, reference=event_id)

    @classmethod
    def for_job(cls, name: str, reference: str = "") -> Actor:
        return cls(ActorType.JOB, label=name, reference=reference)

    @classmethod
    def system(cls, label: str = "system", reference: str = "") -> Actor:
        return cls(ActorType.SYSTEM, label=label, reference=reference)


def event_values(
    *,
    order_id: UUID,
    entity: str,
    action: str,
    actor: Actor,
    from_state: str = "",
    to_state: str = "",
    payment_id: UUID | None = None,
    refund_id: UUID | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit row of a change as {attname: value}: ``record_event`` saves one,
    ``record_events`` many at once."""
    return {
        "order_id": order_id,
        "payment_id": payment_id,
        "refund_id": refund_id,
        "entity": entity,
        "action": action,
        "from_state": str(from_state or ""),
        "to_state": str(to_state or ""),
        "actor_type": actor.type,
        "actor_user_id": getattr(actor.user, "pk", None),
        "actor_label": actor.label[:128],
        "reference": actor.reference[:255],
        "details": {**actor.extra, **(details or {})},
    }


def record_events(rows: Sequence[dict[str, Any]]) -> None:
    """Append many audit rows (``event_values``) at once: a set-based change."""
    insert_rows(OrderPaymentEvent, rows)


def record_event(**kwargs: Any) -> OrderPaymentEvent:
    """Append one audit row (the arguments of ``event_values``)."""
    event = OrderPaymentEvent(**event_values(**kwargs))
    event.save(force_insert=True)
    return event


def run_transition(
    instance: models.Model,
    name: str,
    *,
    entity: str,
    field_name: str = "status",
    args: tuple[Any, ...] = (),
) -> tuple[str, str]:
    """Run transition ``name`` on ``instance`` in memory (not saved); (before, after). An
    illegal transition raises ``InvalidTransition`` and changes nothing."""
    before = getattr(instance, field_name)
    method = getattr(instance, name, None)
    if method is None or not can_proceed(method):
        raise InvalidTransition(
            f"Cannot {name} a {entity} that is {before}.",
            details={"entity": entity, "transition": name, "from_state": str(before)},
        )
    try:
        method(*args)
    except TransitionNotAllowed:
        raise InvalidTransition(
            f"Cannot {name} a {entity} that is {before}.",
            details={"entity": entity, "transition": name, "from_state": str(before)},
        ) from None
    return str(before), str(getattr(instance, field_name))


def apply_transition(
    instance: models.Model,
    name: str,
    *,
    actor: Actor,
    order_id: UUID,
    entity: str,
    field_name: str = "status",
    payment_id: UUID | None = None,
    refund_id: UUID | None = None,
    details: dict[str, Any] | None = None,
    args: tuple[Any, ...] = (),
) -> str:
    """Run transition ``name`` on ``instance``, save it, and append the audit row.

    The caller holds the row lock and the transaction. An illegal transition raises
    ``InvalidTransition`` and changes nothing.
    """
    before, after = run_transition(instance, name, entity=entity, field_name=field_name, args=args)
    instance.save()
    record_event(
        order_id=order_id,
        entity=entity,
        action=name,
        actor=actor,
        from_state=before,
        to_state=after,
        payment_id=payment_id,
        refund_id=refund_id,
        details=details,
    )
    return after


def transition_names_to(
    instance: models.Model, target: str, field_name: str = "status"
) -> list[str]:
    """Names of the transitions available now whose fixed target is ``target``."""
    available = getattr(instance, f"get_available_{field_name}_transitions")()
    return [t.name for t in available if isinstance(t.target, str) and t.target == target]


def transition_to(
    instance: models.Model,
    target: str,
    *,
    field_name: str = "status",
    **kwargs: Any,
) -> str:
    """Move ``instance`` to ``target`` through the one transition that leads there from here."""
    current = getattr(instance, field_name)
    names = transition_names_to(instance, target, field_name)
    if not names:
        entity = kwargs.get("entity", instance._meta.model_name)
        raise InvalidTransition(
            f"No transition leads a {entity} from {current} to {target}.",
            details={"entity": entity, "from_state": str(current), "to_state": target},
        )
    return apply_transition(instance, names[0], field_name=field_name, **kwargs)
