"""Twenty payments confirmed at once on PostgreSQL get twenty consecutive receipt numbers."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from receipts.models import PaymentReceipt, ReceiptSequence
from receipts.services import receipt_issue_for_payment
from tests.factories import OrderFactory
from tests.payflows import confirm_payment, start_payment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
N = 20


def run_together(target, args_list):  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(len(args_list))
    errors: list[BaseException] = []

    def worker(*args):  # type: ignore[no-untyped-def]
        try:
            barrier.wait(timeout=30)
            target(*args)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=a) for a in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_twenty_concurrent_confirmations_number_without_gaps():
    payments = [start_payment(OrderFactory()) for _ in range(N)]
    # Each thread confirms one payment; the commit announces it and the (eager) task issues.
    errors = run_together(
        lambda p: confirm_payment(p, payment_intent_id=f"pi_{p.id.hex}"), [(p,) for p in payments]
    )
    assert errors == []
    receipts = list(PaymentReceipt.objects.filter(kind="receipt").order_by("sequence"))
    assert len(receipts) == N
    assert {r.payment_id for r in receipts} == {p.id for p in payments}
    assert [r.sequence for r in receipts] == list(range(1, N + 1))
    assert all(r.number == f"RCPT-{r.year}-{r.sequence:06d}" and r.sha256 for r in receipts)
    assert ReceiptSequence.objects.get(kind="receipt").last_number == N


def test_concurrent_issues_for_the_same_payment_make_one_receipt():
    payments = [confirm_payment(start_payment(OrderFactory())) for _ in range(2)]
    args = [(p,) for p in payments for _ in range(5)]
    errors = run_together(lambda p: receipt_issue_for_payment(payment_id=p.id), args)
    assert errors == []
    assert PaymentReceipt.objects.count() == 2
    assert sorted(PaymentReceipt.objects.values_list("sequence", flat=True)) == [1, 2]
    assert ReceiptSequence.objects.get(kind="receipt").last_number == 2
