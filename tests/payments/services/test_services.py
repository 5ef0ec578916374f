"""Payment and refund services: validation with codes and nothing written, provider timeouts,
the refund guard (also under 10 concurrent refunds on PostgreSQL), retries, disputes, claims."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from common.errors import Conflict, DomainError, ProviderUnavailable, ValidationFailed
from orders.audit import Actor
from orders.models import Order, OrderPaymentEvent
from orders.services import order_cancel
from payments.models import PaymentTransaction, Refund
from payments.providers.base import FailureKind, Outcome, ProviderResult
from payments.providers.dummy import DummyProvider, ProviderError, ProviderUnavailableError
from payments.services.disputes import payment_close_dispute, payment_open_dispute
from payments.services.payments import (
    payment_apply_result,
    payment_cancel,
    payment_claim_transaction,
    payment_create,
    payment_retry,
    payment_start,
    payment_update_status,
)
from payments.services.refunds import payment_refund, refund_apply_result
from tests.factories import OrderFactory, UserFactory

D = Decimal
WEBHOOK = Actor.for_webhook("dummy", "evt_1")


def counts():
    return (
        PaymentTransaction.objects.count(),
        Refund.objects.count(),
        OrderPaymentEvent.objects.count(),
    )


def paid_payment(order, actor, amount=None):
    payment = payment_create(order_id=order.id, method="fiat", actor=actor, amount=amount)
    return payment_apply_result(
        payment_id=payment.id, actor=WEBHOOK, result=ProviderResult(Outcome.SUCCEEDED)
    )


def status(obj):
    return type(obj).objects.get(pk=obj.pk).status


# --- payment_create -------------------------------------------------------------------------
@pytest.mark.django_db
class TestPaymentCreate:
    @pytest.mark.parametrize(
        ("kwargs", "code", "error"),
        [
            ({"amount": "0"}, "invalid_amount", ValidationFailed),
            ({"amount": "-5"}, "invalid_amount", ValidationFailed),
            ({"amount": 10.5}, "invalid_amount", ValidationFailed),
            ({"amount": "1.001"}, "invalid_amount", ValidationFailed),
            ({"amount": "abc"}, "invalid_amount", ValidationFailed),
            ({"amount": "100.01"}, "amount_exceeds_outstanding", Conflict),
            ({"currency": "EUR"}, "currency_mismatch", Conflict),
            ({"currency": "XXX"}, "unknown_currency", ValidationFailed),
            ({"method": "cheque"}, "unknown_method", ValidationFailed),
            ({"order_id": "not-a-uuid"}, "order_not_found", DomainError),
        ],
    )
    def test_bad_input_is_rejected_and_nothing_written(self, order, actor, kwargs, code, error):
        before = counts()
        with pytest.raises(error) as err:
            payment_create(**{"order_id": order.id, "method": "fiat", "actor": actor, **kwargs})
        assert err.value.code == code
        assert counts() == before
        assert status(order) == "created"

    def test_creates_the_outstanding_amount_with_fee_and_audit(self, order, actor):
        payment = payment_create(order_id=order.id, method="fiat", actor=actor)
        assert (payment.amount, payment.currency, payment.status) == (D("100.00"), "USD", "pending")
        assert status(order) == "payment_pending"
        actions = list(OrderPaymentEvent.objects.values_list("entity", "action"))
        assert actions == [("payment", "create"), ("order", "start_payment")]

    def test_second_open_attempt_is_refused(self, order, actor):
        first = payment_create(order_id=order.id, method="fiat", actor=actor, amount="40")
        before = counts()
        with pytest.raises(Conflict) as err:
            payment_create(order_id=order.id, method="crypto", actor=actor, amount="10")
        assert err.value.code == "payment_in_progress"
        assert err.value.details["transaction_id"] == str(first.id)
        assert counts() == before

    def test_attempt_after_failure_and_outstanding_after_part_payment(self, order, actor):
        first = paid_payment(order, actor, amount="40")
        assert status(order) == "payment_pending"
        with pytest.raises(Conflict) as err:
            payment_create(order_id=order.id, method="fiat", actor=actor, amount="60.01")
        assert err.value.code == "amount_exceeds_outstanding"
        assert err.value.details == {"outstanding_amount": "60.00"}
        second = payment_create(order_id=order.id, method="fiat", actor=actor)
        assert second.amount == D("60.00")
        payment_update_status(payment_id=second.id, status="failed", actor=WEBHOOK)
        assert status(order) == "payment_pending"  # part paid: still waiting for the rest
        third = payment_create(order_id=order.id, method="crypto", actor=actor)
        payment_update_status(payment_id=third.id, status="confirmed", actor=WEBHOOK)
        assert status(order) == "paid" and first.id != third.id

    @pytest.mark.parametrize("order_status", ["paid", "shipped", "cancelled", "refunded"])
    def test_order_not_payable(self, order, actor, order_status):
        Order.objects.filter(pk=order.pk).update(status=order_status)
        before = counts()
        with pytest.raises(Conflict) as err:
            payment_create(order_id=order.id, method="fiat", actor=actor)
        assert err.value.code == "order_not_payable" and err.value.http_status == 409
        assert counts() == before

    def test_dummy_provider_refused_when_disabled(self, order, actor, settings):
        from payments.providers.registry import get_provider

        settings.DUMMY_PROVIDER_ENABLED = False
        get_provider.cache_clear()
        try:
            with pytest.raises(ValidationFailed) as err:
                payment_create(order_id=order.id, method="fiat", actor=actor)
            assert err.value.code == "provider_disabled"
            assert counts() == (0, 0, 0)
        finally:
            get_provider.cache_clear()


# --- payment_start and provider results -----------------------------------------------------
@pytest.mark.django_db
class TestPaymentStart:
    def test_timeout_leaves_payment_unknown_and_raises_502(self, order, actor):
        payment = payment_create(order_id=order.id, method="fiat", actor=actor)
        DummyProvider.script[("create", str(payment.id))] = ProviderUnavailableError("timeout")
        with pytest.raises(ProviderUnavailable) as err:
            payment_start(payment_id=payment.id, actor=actor)
        assert err.value.http_status == 502
        assert status(payment) == "unknown"
        assert status(order) == "payment_pending"
        # Still one open attempt: a new payment is refused until the unknown one is reconciled.
        with pytest.raises(Conflict) as err2:
            payment_create(order_id=order.id, method="fiat", actor=actor)
        assert err2.value.code == "payment_in_progress"

    def test_provider_refusal_fails_the_payment_with_its_code(self, order, actor):
        payment = payment_create(order_id=order.id, method="fiat", actor=actor)
        DummyProvider.script[("create", "*")] = ProviderError(
            "declined", code="card_declined", kind=FailureKind.NEEDS_BUYER
        )
        with pytest.raises(ValidationFailed) as err:
            payment_start(payment_id=payment.id, actor=actor)
        assert err.value.code == "card_declined"
        payment = PaymentTransaction.objects.get(pk=payment.pk)
        assert (payment.status, payment.failure_code) == ("failed", "card_declined")
        assert status(order) == "payment_failed"

    def test_started_twice_is_a_conflict(self, order, actor):
        payment = paid_payment(order, actor)
        with pytest.raises(Conflict) as err:
            payment_start(payment_id=payment.id, actor=actor)
        assert err.value.code == "payment_already_started"

    def test_success_never_goes_backwards(self, order, actor):
        payment = paid_payment(order, actor)
        for outcome in (Outcome.FAILED, Outcome.PENDING, Outcome.CANCELLED, Outcome.UNKNOWN):
            payment_apply_result(
                payment_id=payment.id, actor=WEBHOOK, result=ProviderResult(outcome)
            )
        assert status(payment) == "confirmed" and status(order) == "paid"

    def test_update_status_refuses_refund_and_dispute_states(self, order, actor):
        payment = paid_payment(order, actor)
        for target in ("refunded", "partially_refunded", "disputed", "pending"):
            with pytest.raises(DomainError) as err:
                payment_update_status(payment_id=payment.id, status=target, actor=WEBHOOK)
            assert err.value.code == "invalid_transition"
        with pytest.raises(ValidationFailed) as err:
            payment_update_status(payment_id=payment.id, status="bogus", actor=WEBHOOK)
        assert err.value.code == "unknown_status"

    def test_cancel_only_open_payments(self, order, actor):
        payment = payment_create(order_id=order.id, method="fiat", actor=actor)
        payment = payment_cancel(payment_id=payment.id, actor=actor)
        assert payment.status == "cancelled" and status(order) == "payment_failed"
        with pytest.raises(DomainError) as err:
            payment_cancel(payment_id=payment.id, actor=actor)
        assert err.value.code == "invalid_transition"


# --- late and surplus money ------------------------------------------------------------------
@pytest.mark.django_db
class TestUnexpectedMoney:
    def test_cancelled_order_late_payment_is_flagged_not_applied(self, order, actor):
        payment = payment_create(order_id=order.id, method="fiat", actor=actor)
        order_cancel(order_id=order.id, actor=actor)
        payment_apply_result(
            payment_id=payment.id, actor=WEBHOOK, result=ProviderResult(Outcome.SUCCEEDED)
        )
        payment = PaymentTransaction.objects.get(pk=payment.pk)
        assert payment.status == "confirmed" and status(order) == "cancelled"
        assert payment.review_status == "flagged"
        assert [r["reason"] for r in payment.review_reasons] == ["order_cancelled"]
        refund = payment_refund(order_id=order.id, actor=actor)  # staff give it back
        assert refund.status == "succeeded" and status(order) == "refunded"

    def test_success_after_cancel_and_surplus_are_flagged(self, order, actor):
        first = payment_create(order_id=order.id, method="fiat", actor=actor)
        payment_cancel(payment_id=first.id, actor=actor)
        second = payment_create(order_id=order.id, method="fiat", actor=actor)
        payment_update_status(payment_id=second.id, status="confirmed", actor=WEBHOOK)
        payment_apply_result(
            payment_id=first.id, actor=WEBHOOK, result=ProviderResult(Outcome.SUCCEEDED)
        )
        first = PaymentTransaction.objects.get(pk=first.pk)
        assert first.status == "confirmed" and status(order) == "paid"
        assert [r["reason"] for r in first.review_reasons] == ["late_payment", "overpaid"]


# --- refunds --------------------------------------------------------------------------------
@pytest.mark.django_db
class TestRefunds:
    @pytest.mark.parametrize("amount", ["100.01", "0.001", "-1", "0", "abc"])
    def test_over_or_bad_refund_sends_nothing(self, order, actor, staff, amount):
        paid_payment(order, actor)
        before = counts()
        calls = list(DummyProvider.calls)
        with pytest.raises(DomainError) as err:
            payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount=amount)
        assert err.value.code in ("refund_exceeds_paid", "invalid_amount")
        if amount == "100.01":
            assert err.value.code == "refund_exceeds_paid" and err.value.http_status == 409
        assert counts() == before
        assert DummyProvider.calls == calls  # nothing sent to the provider

    def test_refund_guard_counts_pending_refunds(self, order, actor, staff):
        paid_payment(order, actor)
        admin = Actor.for_admin(staff)
        payment_refund(order_id=order.id, actor=admin, amount="70", send=False)
        with pytest.raises(Conflict) as err:
            payment_refund(order_id=order.id, actor=admin, amount="30.01")
        assert err.value.code == "refund_exceeds_paid"
        assert err.value.details["refundable_amount"] == "30.00"
        assert not [c for c in DummyProvider.calls if c[0] == "refund"]

    def test_nothing_to_refund(self, order, actor, staff):
        with pytest.raises(Conflict) as err:
            payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="1")
        assert err.value.code == "not_refundable"

    def test_refund_failing_after_success_restores_and_flags(self, order, actor, staff):
        payment = paid_payment(order, actor)
        admin = Actor.for_admin(staff)
        refund = payment_refund(order_id=order.id, actor=admin, amount="30")
        assert refund.status == "succeeded" and status(order) == "partially_refunded"
        assert PaymentTransaction.objects.get(pk=payment.pk).refunded_amount == D("30")

        refund_apply_result(
            refund_id=refund.id,
            actor=Actor.for_webhook("dummy", "evt_refund_failed"),
            result=ProviderResult(Outcome.FAILED, error_message="bank returned it"),
        )
        payment = PaymentTransaction.objects.get(pk=payment.pk)
        assert status(refund) == "failed"
        assert payment.refunded_amount == D("0") and payment.refundable_amount == D("100.00")
        assert payment.status == "confirmed" and status(order) == "paid"
        assert payment.review_status == "flagged"
        assert payment.review_reasons[-1]["reason"] == "refund_failed"
        # The money can be refunded again, in full.
        assert payment_refund(order_id=order.id, actor=admin).amount == D("100.00")
        assert status(order) == "refunded"

    def test_refund_timeout_is_unknown_and_keeps_the_room_taken(self, order, actor, staff):
        paid_payment(order, actor)
        DummyProvider.script[("refund", "*")] = ProviderUnavailableError("timeout")
        with pytest.raises(ProviderUnavailable):
            payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="60")
        refund = Refund.objects.get()
        assert refund.status == "unknown"
        with pytest.raises(Conflict) as err:
            payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="40.01")
        assert err.value.code == "refund_exceeds_paid"


# --- retries ---------------------------------------------------------------------------------
@pytest.mark.django_db
class TestRetry:
    def test_retry_after_failure_creates_a_new_attempt(self, order, actor):
        first = payment_create(order_id=order.id, method="fiat", actor=actor)
        payment_update_status(payment_id=first.id, status="failed", actor=WEBHOOK)
        retry = payment_retry(order_id=order.id, actor=actor, method="crypto")
        assert retry.retry_of_id == first.id and retry.method == "crypto"
        assert status(order) == "payment_pending"

    @pytest.mark.parametrize("situation", ["none", "open", "paid", "final"])
    def test_not_retryable(self, order, actor, situation):
        if situation == "open":
            payment_create(order_id=order.id, method="fiat", actor=actor)
        elif situation == "paid":
            paid_payment(order, actor)
        elif situation == "final":
            p = payment_create(order_id=order.id, method="fiat", actor=actor)
            payment_apply_result(
                payment_id=p.id,
                actor=WEBHOOK,
                result=ProviderResult(Outcome.FAILED, failure_kind=FailureKind.FINAL),
            )
        before = counts()
        with pytest.raises(Conflict) as err:
            payment_retry(order_id=order.id, actor=actor)
        assert err.value.code == "not_retryable"
        assert counts() == before

    def test_final_failure_may_retry_with_another_method(self, order, actor):
        p = payment_create(order_id=order.id, method="fiat", actor=actor)
        payment_apply_result(
            payment_id=p.id,
            actor=WEBHOOK,
            result=ProviderResult(Outcome.FAILED, failure_kind=FailureKind.FINAL),
        )
        assert payment_retry(order_id=order.id, actor=actor, method="escrow").method == "escrow"


# --- disputes --------------------------------------------------------------------------------
@pytest.mark.django_db
class TestDisputes:
    def test_dispute_won_returns_to_shipped(self, order, actor, staff):
        from orders.services import order_mark_shipped

        payment = paid_payment(order, actor)
        order_mark_shipped(order_id=order.id, actor=Actor.for_user(order.seller))
        payment_open_dispute(payment_id=payment.id, actor=WEBHOOK)
        assert status(payment) == "disputed" and status(order) == "disputed"
        assert PaymentTransaction.objects.get(pk=payment.pk).review_status == "flagged"
        payment_close_dispute(payment_id=payment.id, actor=WEBHOOK, outcome="won")
        assert status(payment) == "confirmed" and status(order) == "shipped"

    def test_dispute_lost_refunds_the_rest(self, order, actor, staff):
        payment = paid_payment(order, actor)
        payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="25")
        payment_open_dispute(payment_id=payment.id, actor=WEBHOOK)
        payment_close_dispute(payment_id=payment.id, actor=WEBHOOK, outcome="lost")
        payment = PaymentTransaction.objects.get(pk=payment.pk)
        assert payment.status == "refunded" and payment.refunded_amount == D("100.00")
        assert sorted(Refund.objects.values_list("amount", flat=True)) == [D("25"), D("75")]
        assert status(order) == "refunded"

    def test_dispute_lost_supersedes_pending_refunds(self, order, actor, staff):
        """A refund still pending when the dispute is lost must not count as paid back, and
        its later failure must not make the payment refundable again."""
        from orders.models import OrderPaymentEvent

        payment = paid_payment(order, actor)
        payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="25")
        pending = payment_refund(
            order_id=order.id, actor=Actor.for_admin(staff), amount="30", send=False
        )
        payment_open_dispute(payment_id=payment.id, actor=WEBHOOK)
        payment_close_dispute(payment_id=payment.id, actor=WEBHOOK, outcome="lost")
        pending.refresh_from_db()
        assert pending.status == "failed" and "dispute" in pending.failure_reason
        assert OrderPaymentEvent.objects.filter(
            refund_id=pending.id, action="fail", to_state="failed"
        ).exists()
        succeeded = Refund.objects.filter(payment=payment, status="succeeded")
        assert sum(r.amount for r in succeeded) == D("100.00")
        # The provider reports the superseded refund failed: nothing moves.
        refund_apply_result(
            refund_id=pending.id, actor=WEBHOOK, result=ProviderResult(Outcome.FAILED)
        )
        payment = PaymentTransaction.objects.get(pk=payment.pk)
        assert payment.status == "refunded" and payment.refunded_amount == D("100.00")
        assert payment.refundable_amount == 0 and status(order) == "refunded"
        with pytest.raises(Conflict):
            payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="1")

    def test_escrow_released_after_dispute_completes_the_order(self, order, actor):
        payment = paid_payment(order, actor)
        payment_open_dispute(payment_id=payment.id, actor=WEBHOOK)
        payment_close_dispute(payment_id=payment.id, actor=WEBHOOK, outcome="released")
        assert status(payment) == "completed" and status(order) == "completed"

    def test_refund_settling_during_dispute_is_followed_when_won(self, order, actor, staff):
        payment = paid_payment(order, actor)
        refund = payment_refund(
            order_id=order.id, actor=Actor.for_admin(staff), amount="10", send=False
        )
        payment_open_dispute(payment_id=payment.id, actor=WEBHOOK)
        refund_apply_result(
            refund_id=refund.id, actor=WEBHOOK, result=ProviderResult(Outcome.SUCCEEDED)
        )
        assert status(payment) == "disputed"
        payment_close_dispute(payment_id=payment.id, actor=WEBHOOK, outcome="won")
        assert status(payment) == "partially_refunded"
        assert status(order) == "partially_refunded"

    def test_bad_outcome_and_illegal_open(self, order, actor):
        payment = payment_create(order_id=order.id, method="fiat", actor=actor)
        with pytest.raises(ValidationFailed) as err:
            payment_close_dispute(payment_id=payment.id, actor=WEBHOOK, outcome="draw")
        assert err.value.code == "invalid_dispute_outcome"
        with pytest.raises(DomainError) as err:
            payment_open_dispute(payment_id=payment.id, actor=WEBHOOK)
        assert err.value.code == "invalid_transition"
        assert status(payment) == "pending"


# --- claims ----------------------------------------------------------------------------------
@pytest.mark.django_db
class TestClaims:
    TX = "0x" + "ab" * 32

    def test_hash_reuse_is_refused(self, actor, buyer, seller):
        first_order = OrderFactory(buyer=buyer, seller=seller)
        second_order = OrderFactory(buyer=buyer, seller=seller)
        first = payment_create(order_id=first_order.id, method="crypto", actor=actor)
        second = payment_create(order_id=second_order.id, method="crypto", actor=actor)
        payment_claim_transaction(
            payment_id=first.id, transaction_hash=self.TX.upper().replace("0X", "0x"),
            chain_id=31337, actor=actor,
        )  # fmt: skip
        assert PaymentTransaction.objects.get(pk=first.pk).transaction_hash == self.TX
        before = counts()
        with pytest.raises(Conflict) as err:
            payment_claim_transaction(
                payment_id=second.id, transaction_hash=self.TX, chain_id=31337, actor=actor
            )
        assert err.value.code == "transaction_hash_already_used"
        assert counts() == before

    @pytest.mark.parametrize("tx", ["", "0x12", "ab" * 32, "0x" + "zz" * 32, None])
    def test_bad_hash(self, order, actor, tx):
        payment = payment_create(order_id=order.id, method="crypto", actor=actor)
        with pytest.raises(ValidationFailed) as err:
            payment_claim_transaction(
                payment_id=payment.id, transaction_hash=tx, chain_id=1, actor=actor
            )
        assert err.value.code == "invalid_transaction_hash"

    def test_card_payment_takes_no_hash(self, order, actor):
        payment = payment_create(order_id=order.id, method="fiat", actor=actor)
        with pytest.raises(ValidationFailed) as err:
            payment_claim_transaction(
                payment_id=payment.id, transaction_hash=self.TX, chain_id=1, actor=actor
            )
        assert err.value.code == "not_a_chain_payment"


# --- PostgreSQL: the refund guard under concurrency and the database's own checks ----------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_refunds_of_30_percent_exactly_three_win():
    buyer, seller = UserFactory(username="cbuyer"), UserFactory(username="cseller")
    staff = UserFactory(username="cstaff", is_staff=True)
    order = OrderFactory(buyer=buyer, seller=seller, amount=D("100.00"))
    payment = paid_payment(order, Actor.for_user(buyer))
    barrier = threading.Barrier(10)
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait()
            try:
                payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="30.00")
                outcome = "ok"
            except Conflict as exc:
                outcome = exc.code
            with lock:
                results.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] * 3 + ["refund_exceeds_paid"] * 7
    payment = PaymentTransaction.objects.get(pk=payment.pk)
    refunds = list(Refund.objects.filter(payment=payment))
    assert len(refunds) == 3 and all(r.status == "succeeded" for r in refunds)
    assert payment.refunded_amount == sum(r.amount for r in refunds) == D("90.00")
    assert payment.refunded_amount <= payment.amount
    assert Order.objects.get(pk=order.pk).status == "partially_refunded"
    assert len([c for c in DummyProvider.calls if c[0] == "refund"]) == 3


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("update", "constraint"),
    [
        ({"refunded_amount": D("100.01")}, "payment_refunds_within_amount"),
        ({"refunded_amount": D("-1")}, "payment_refunds_within_amount"),
        ({"fee_amount": D("100.01")}, "payment_fee_within_amount"),
        ({"amount": D("0")}, "payment_amount_positive"),
    ],
)
def test_database_refuses_impossible_amounts(order, actor, update, constraint):
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    with pytest.raises(IntegrityError) as err, transaction.atomic():
        PaymentTransaction.objects.filter(pk=payment.pk).update(**update)
    assert constraint in str(err.value)
    with pytest.raises(IntegrityError) as err, transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "INSERT INTO payments_refund (id, payment_id, amount, currency, status, reason,"
            " idempotency_key, provider_status, failure_reason, created_at, updated_at)"
            " VALUES (gen_random_uuid(), %s, 0, 'USD', 'pending', '', gen_random_uuid(), '', '',"
            " now(), now())",
            [payment.pk],
        )
    assert "refund_amount_positive" in str(err.value)


def test_high_value_payment_is_flagged_for_review(buyer, seller, settings):
    settings.REVIEW_HIGH_VALUE_THRESHOLDS = {"USD": "5000"}
    big = OrderFactory(buyer=buyer, seller=seller, amount="5000.00")
    small = OrderFactory(buyer=buyer, seller=seller, amount="4999.99")
    for order in (big, small):
        payment = payment_create(order_id=order.id, method="fiat", actor=Actor.for_user(buyer))
        payment_apply_result(
            payment_id=payment.id,
            actor=WEBHOOK,
            result=ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded"),
        )
        payment.refresh_from_db()
        flagged = [r["reason"] for r in payment.review_reasons]
        assert ("high_value" in flagged) == (order is big)
