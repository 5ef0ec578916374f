"""Every legal transition of the order, payment, refund and review state machines (from the
tables below, checked against the machines' own declarations), a sample of illegal ones, and
the audit row each writes."""

from __future__ import annotations

from uuid import uuid4

import pytest
from django_fsm import FSMField

from common.errors import InvalidTransition
from orders.audit import Actor, apply_transition, transition_to
from orders.models import Order, OrderPaymentEvent
from payments.models import PaymentTransaction, Refund
from payments.services.payments import payment_update_status
from tests.factories import OrderFactory, PaymentFactory

pytestmark = pytest.mark.django_db

# (transition, from, to, args)
ORDER = [
    ("start_payment", "created", "payment_pending", ()),
    ("start_payment", "payment_failed", "payment_pending", ()),
    ("fail_payment", "payment_pending", "payment_failed", ()),
    ("mark_paid", "created", "paid", ()),
    ("mark_paid", "payment_pending", "paid", ()),
    ("mark_paid", "payment_failed", "paid", ()),
    ("ship", "paid", "shipped", ()),
    ("ship", "partially_refunded", "shipped", ()),
    ("deliver", "shipped", "delivered", ()),
    ("complete", "paid", "completed", ()),
    ("complete", "shipped", "completed", ()),
    ("complete", "delivered", "completed", ()),
    ("complete", "partially_refunded", "completed", ()),
    ("refund_partially", "payment_pending", "partially_refunded", ()),
    ("refund_partially", "payment_failed", "partially_refunded", ()),
    ("refund_partially", "paid", "partially_refunded", ()),
    ("refund_partially", "disputed", "partially_refunded", ()),
    *[
        ("refund_fully", s, "refunded", ())
        for s in (
            "payment_pending",
            "payment_failed",
            "paid",
            "shipped",
            "delivered",
            "completed",
            "partially_refunded",
            "cancelled",
            "disputed",
        )
    ],
    *[
        ("open_dispute", s, "disputed", ())
        for s in (
            "payment_pending",
            "payment_failed",
            "paid",
            "shipped",
            "delivered",
            "completed",
            "partially_refunded",
            "cancelled",
        )
    ],
    *[
        ("close_dispute", "disputed", t, (t,))
        for t in (
            "payment_pending",
            "payment_failed",
            "paid",
            "shipped",
            "delivered",
            "completed",
            "partially_refunded",
            "cancelled",
        )
    ],
    *[
        ("restore_after_refund_failure", s, t, (t,))
        for s in ("partially_refunded", "refunded")
        for t in ("payment_pending", "paid", "shipped", "delivered", "completed", "cancelled")
    ],
    ("restore_after_refund_failure", "refunded", "partially_refunded", ("partially_refunded",)),
    ("cancel", "created", "cancelled", ()),
    ("cancel", "payment_pending", "cancelled", ()),
    ("cancel", "payment_failed", "cancelled", ()),
]

PAYMENT = [
    ("start_processing", "pending", "processing", ()),
    ("start_processing", "unknown", "processing", ()),
    ("start_processing", "partially_paid", "processing", ()),
    *[("receive_part", s, "partially_paid", ()) for s in ("pending", "processing", "unknown")],
    ("back_to_pending", "processing", "pending", ()),
    ("back_to_pending", "unknown", "pending", ()),
    ("back_to_pending", "partially_paid", "pending", ()),
    ("mark_unknown", "pending", "unknown", ()),
    ("mark_unknown", "processing", "unknown", ()),
    *[
        ("confirm", s, "confirmed", ())
        for s in (
            "pending",
            "processing",
            "unknown",
            "partially_paid",
            "failed",
            "cancelled",
            "expired",
        )
    ],
    ("complete", "confirmed", "completed", ()),
    ("complete", "partially_refunded", "completed", ()),
    ("fail", "pending", "failed", ("card_declined", "declined")),
    ("fail", "processing", "failed", ("reverted", "")),
    ("fail", "unknown", "failed", ()),
    ("cancel", "pending", "cancelled", ()),
    ("cancel", "unknown", "cancelled", ()),
    ("expire", "pending", "expired", ()),
    ("expire", "processing", "expired", ()),
    ("expire", "partially_paid", "expired", ()),
    ("refund_partially", "confirmed", "partially_refunded", ()),
    ("refund_partially", "completed", "partially_refunded", ()),
    ("refund_partially", "refunded", "partially_refunded", ()),
    ("refund_fully", "confirmed", "refunded", ()),
    ("refund_fully", "completed", "refunded", ()),
    ("refund_fully", "partially_refunded", "refunded", ()),
    ("refund_fully", "disputed", "refunded", ()),
    ("restore_after_refund_failure", "partially_refunded", "confirmed", ()),
    ("restore_after_refund_failure", "refunded", "confirmed", ()),
    ("open_dispute", "confirmed", "disputed", ()),
    ("open_dispute", "completed", "disputed", ()),
    ("open_dispute", "partially_refunded", "disputed", ()),
    ("close_dispute", "disputed", "confirmed", ()),
    ("release_after_dispute", "disputed", "completed", ()),
]

REVIEW = [
    *[("flag_for_review", s, "flagged", ("amount_mismatch",)) for s in ("none", "approved")],
    ("flag_for_review", "rejected", "flagged", ("late_payment",)),
    ("flag_for_review", "flagged", "flagged", ("reorg",)),
    ("approve_review", "flagged", "approved", ("ok",)),
    ("reject_review", "flagged", "rejected", ("no",)),
]

REFUND = [
    ("mark_unknown", "pending", "unknown", ()),
    ("succeed", "pending", "succeeded", ()),
    ("succeed", "unknown", "succeeded", ()),
    ("fail", "pending", "failed", ("declined",)),
    ("fail", "unknown", "failed", ()),
    ("fail", "succeeded", "failed", ("reversed",)),
]

ILLEGAL = [
    ("order", "status", "ship", "created"),
    ("order", "status", "ship", "payment_pending"),
    ("order", "status", "deliver", "paid"),
    ("order", "status", "complete", "payment_pending"),
    ("order", "status", "mark_paid", "shipped"),
    ("order", "status", "mark_paid", "cancelled"),
    ("order", "status", "cancel", "paid"),
    ("order", "status", "cancel", "shipped"),
    ("order", "status", "start_payment", "paid"),
    ("order", "status", "refund_partially", "created"),
    ("order", "status", "refund_fully", "created"),
    ("order", "status", "open_dispute", "refunded"),
    ("order", "status", "close_dispute", "paid"),
    ("order", "status", "restore_after_refund_failure", "paid"),
    ("order", "status", "no_such_transition", "created"),
    ("payment", "status", "confirm", "refunded"),
    ("payment", "status", "confirm", "confirmed"),
    ("payment", "status", "fail", "confirmed"),
    ("payment", "status", "cancel", "processing"),
    ("payment", "status", "cancel", "confirmed"),
    ("payment", "status", "expire", "unknown"),
    ("payment", "status", "back_to_pending", "confirmed"),
    ("payment", "status", "complete", "pending"),
    ("payment", "status", "refund_fully", "pending"),
    ("payment", "status", "refund_fully", "failed"),
    ("payment", "status", "open_dispute", "pending"),
    ("payment", "status", "open_dispute", "refunded"),
    ("payment", "status", "close_dispute", "confirmed"),
    ("payment", "review_status", "approve_review", "none"),
    ("payment", "review_status", "reject_review", "approved"),
    ("refund", "status", "succeed", "failed"),
    ("refund", "status", "succeed", "succeeded"),
    ("refund", "status", "mark_unknown", "succeeded"),
    ("refund", "status", "fail", "failed"),
]


def make(kind: str, field: str, state: str):
    """A saved row of ``kind`` in ``state`` (set with a queryset update: the FSM field is
    protected), reloaded."""
    if kind == "order":
        obj = OrderFactory()
        model = Order
    elif kind == "payment":
        obj = PaymentFactory()
        model = PaymentTransaction
    else:
        payment = PaymentFactory()
        obj = Refund.objects.create(payment=payment, amount=payment.amount, currency="USD")
        model = Refund
    model.objects.filter(pk=obj.pk).update(**{field: state})
    return model.objects.get(pk=obj.pk)


def run(kind, obj, name, actor, field="status", args=()):
    order_id = obj.id if kind == "order" else getattr(obj, "order_id", None)
    if kind == "refund":
        order_id = obj.payment.order_id
    return apply_transition(
        obj,
        name,
        actor=actor,
        order_id=order_id,
        entity={"status": kind, "review_status": "review"}[field] if kind != "refund" else kind,
        field_name=field,
        payment_id=obj.id if kind == "payment" else None,
        refund_id=obj.id if kind == "refund" else None,
        args=args,
    )


def declared(model, field="status") -> set[tuple[str, str]]:
    fsm_field = model._meta.get_field(field)
    assert isinstance(fsm_field, FSMField)
    return {(t.name, str(t.source)) for t in fsm_field.get_all_transitions(model)}


@pytest.mark.parametrize(
    ("model", "field", "table"),
    [
        (Order, "status", ORDER),
        (PaymentTransaction, "status", PAYMENT),
        (PaymentTransaction, "review_status", REVIEW),
        (Refund, "status", REFUND),
    ],
)
def test_tables_cover_every_declared_transition(model, field, table):
    in_table = {(name, source) for name, source, _, _ in table}
    expected = declared(model, field)
    if field == "review_status":  # flag_for_review is declared from "*"
        expected = {e for e in expected if e[1] != "*"} | {
            ("flag_for_review", s) for s in ("none", "approved", "rejected", "flagged")
        }
    assert in_table == expected


def _check(kind, field, name, source, target, args, staff):
    obj = make(kind, field, source)
    ref = f"req-{uuid4().hex[:8]}"
    actor = Actor.for_admin(staff, reference=ref)
    before = OrderPaymentEvent.objects.count()
    result = run(kind, obj, name, actor, field=field, args=args)
    assert result == target
    reloaded = type(obj).objects.get(pk=obj.pk)
    assert getattr(reloaded, field) == target
    assert OrderPaymentEvent.objects.count() == before + 1
    event = OrderPaymentEvent.objects.get(reference=ref)
    assert (event.action, event.from_state, event.to_state) == (name, source, target)
    assert (event.actor_type, event.actor_user, event.actor_label) == ("admin", staff, "staff")
    if kind == "payment":
        assert event.payment_id == obj.id and event.order_id == obj.order_id
    if kind == "refund":
        assert event.refund_id == obj.id and event.order_id == obj.payment.order_id


@pytest.mark.parametrize(("name", "source", "target", "args"), ORDER)
def test_order_transition(name, source, target, args, staff):
    _check("order", "status", name, source, target, args, staff)


@pytest.mark.parametrize(("name", "source", "target", "args"), PAYMENT)
def test_payment_transition(name, source, target, args, staff):
    _check("payment", "status", name, source, target, args, staff)


@pytest.mark.parametrize(("name", "source", "target", "args"), REVIEW)
def test_review_transition(name, source, target, args, staff):
    _check("payment", "review_status", name, source, target, args, staff)


@pytest.mark.parametrize(("name", "source", "target", "args"), REFUND)
def test_refund_transition(name, source, target, args, staff):
    _check("refund", "status", name, source, target, args, staff)


@pytest.mark.parametrize(("kind", "field", "name", "source"), ILLEGAL)
def test_illegal_transition_raises_and_writes_nothing(kind, field, name, source, staff):
    obj = make(kind, field, source)
    before = OrderPaymentEvent.objects.count()
    with pytest.raises(InvalidTransition) as err:
        run(kind, obj, name, Actor.for_admin(staff), field=field)
    assert err.value.code == "invalid_transition" and err.value.http_status == 409
    assert OrderPaymentEvent.objects.count() == before
    assert getattr(type(obj).objects.get(pk=obj.pk), field) == source


@pytest.mark.parametrize("target", ["created", "refunded", "disputed", "nonsense"])
def test_returning_transitions_refuse_states_they_cannot_return_to(target, staff):
    order = make("order", "status", "disputed")
    with pytest.raises(InvalidTransition):
        run("order", order, "close_dispute", Actor.for_admin(staff), args=(target,))
    assert Order.objects.get(pk=order.pk).status == "disputed"
    assert not OrderPaymentEvent.objects.filter(order=order).exists()


def test_status_is_protected_and_refresh_from_db_reloads_it(staff):
    order = make("order", "status", "created")
    with pytest.raises(AttributeError):
        order.status = "paid"
    Order.objects.filter(pk=order.pk).update(status="paid")
    order.refresh_from_db()
    assert order.status == "paid"


def test_dispute_remembers_and_returns_to_the_state_before(staff):
    order = make("order", "status", "shipped")
    run("order", order, "open_dispute", Actor.for_admin(staff))
    assert Order.objects.get(pk=order.pk).status_before_dispute == "shipped"
    assert run("order", order, "close_dispute", Actor.for_admin(staff)) == "shipped"
    reloaded = Order.objects.get(pk=order.pk)
    assert (reloaded.status, reloaded.status_before_dispute) == ("shipped", "")


def test_transition_to_picks_the_transition_and_refuses_unreachable_states(staff):
    order = make("order", "status", "paid")
    common = {"actor": Actor.for_job("test"), "order_id": order.id, "entity": "order"}
    assert transition_to(order, "shipped", **common) == "shipped"
    with pytest.raises(InvalidTransition):
        transition_to(order, "created", **common)
    assert [e.action for e in OrderPaymentEvent.objects.filter(order=order)] == ["ship"]


@pytest.mark.parametrize(
    ("actor", "expected"),
    [
        (lambda u: Actor.for_user(u, "req-1"), ("user", True, "buyer", "req-1")),
        (lambda u: Actor.for_webhook("stripe", "evt_9"), ("webhook", False, "stripe", "evt_9")),
        (lambda u: Actor.for_job("poll_chains", "tick-3"), ("job", False, "poll_chains", "tick-3")),
        (lambda u: Actor.system(), ("system", False, "system", "")),
    ],
)
def test_service_transitions_record_their_actor(actor, expected, buyer):
    payment = PaymentFactory(order__buyer=buyer)
    payment_update_status(payment_id=payment.id, status="processing", actor=actor(buyer))
    event = OrderPaymentEvent.objects.get(entity="payment", action="start_processing")
    assert (event.actor_type, event.actor_user is not None, event.actor_label, event.reference) == (
        expected
    )
    assert (event.from_state, event.to_state, event.payment_id) == (
        "pending",
        "processing",
        payment.id,
    )
