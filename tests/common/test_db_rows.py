"""Many rows at once (``common/db.py``): ``insert_rows`` and ``update_rows`` write what the ORM
would (defaults, automatic timestamps, conflicts skipped on request), and the ``__any`` lookup
selects what ``__in`` selects."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.db import insert_rows, update_rows
from orders.audit import Actor, event_values, record_events
from orders.models import OrderPaymentEvent
from payments.models import ChainDeposit, PaymentTransaction
from tests.factories import OrderFactory, PaymentFactory

pytestmark = pytest.mark.django_db


def deposit(payment: PaymentTransaction, tx_hash: str, amount: int) -> dict[str, object]:
    return {
        "payment_id": payment.id,
        "chain_id": 31337,
        "transaction_hash": tx_hash,
        "log_index": -1,
        "token_address": "",
        "from_address": "0x" + "1" * 40,
        "amount_base_units": amount,
        "block_number": 7,
        "block_hash": "0x" + "a" * 64,
    }


def test_insert_rows_fills_defaults_and_timestamps_and_can_skip_conflicts():
    payment = PaymentFactory()
    insert_rows(ChainDeposit, [deposit(payment, "0x01", 5)])
    row = ChainDeposit.objects.get(transaction_hash="0x01")
    assert (row.status, row.excess_base_units, row.amount_base_units) == ("seen", 0, 5)
    assert row.created_at and row.updated_at
    # the same transaction again (unique) beside a new one: the new one only
    insert_rows(
        ChainDeposit,
        [deposit(payment, "0x01", 9), deposit(payment, "0x02", 3)],
        ignore_conflicts=True,
    )
    assert sorted(ChainDeposit.objects.values_list("transaction_hash", "amount_base_units")) == [
        ("0x01", 5),
        ("0x02", 3),
    ]


def test_record_events_writes_the_rows_record_event_would():
    order = OrderFactory()
    actor = Actor.for_job("test", reference="chain:1")
    rows = [
        event_values(
            order_id=order.id,
            entity="payment",
            action="confirm",
            actor=actor,
            from_state="processing",
            to_state="confirmed",
            details={"n": i, "amount": "1.50"},
        )
        for i in range(3)
    ]
    record_events(rows)
    events = list(OrderPaymentEvent.objects.filter(order_id=order.id).order_by("id"))
    assert [e.details["n"] for e in events] == [0, 1, 2]
    assert {(e.actor_type, e.actor_label, e.reference) for e in events} == {
        ("job", "test", "chain:1")
    }
    assert all(e.created_at for e in events)


def test_update_rows_sets_each_rows_values_and_nothing_else():
    first, second, untouched = PaymentFactory(), PaymentFactory(), PaymentFactory()
    updated = update_rows(
        PaymentTransaction,
        ["confirmations", "provider_status", "received_base_units"],
        [(first.id, 3, "seen", 10), (second.id, 5, "final", Decimal(20))],
    )
    assert updated == 2
    values = dict(
        PaymentTransaction.objects.values_list("id", "confirmations").filter(
            id__in=[first.id, second.id, untouched.id]
        )
    )
    assert values == {first.id: 3, second.id: 5, untouched.id: untouched.confirmations}
    assert PaymentTransaction.objects.get(pk=second.pk).received_base_units == 20


def test_the_any_lookup_selects_what_in_selects():
    payments = [PaymentFactory() for _ in range(3)]
    wanted = [payments[0].id, payments[2].id]
    assert set(PaymentTransaction.objects.filter(id__any=wanted)) == set(
        PaymentTransaction.objects.filter(id__in=wanted)
    )
    orders = [p.order_id for p in payments[:2]]  # a foreign key
    assert PaymentTransaction.objects.filter(order_id__any=orders).count() == 2
    assert not PaymentTransaction.objects.filter(id__any=[]).exists()
