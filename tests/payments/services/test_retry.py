"""The retry policy, one failure class at a time, with the clock moved by time-machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
import time_machine
from django.core.management import call_command
from django.test import override_settings

from common.errors import ProviderUnavailable, ValidationFailed
from orders.audit import Actor
from orders.models import OrderPaymentEvent
from payments.models import PaymentTransaction
from payments.providers.base import (
    FailureKind,
    Outcome,
    ProviderError,
    ProviderResult,
    ProviderUnavailableError,
)
from payments.providers.dummy import DummyProvider
from payments.services.payments import (
    payment_apply_result,
    payment_create,
    payment_retry,
    payment_start,
)
from payments.services.retries import retry_delay, retry_pass
from payments.signals import payment_retry_exhausted

pytestmark = pytest.mark.django_db
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
RETRY = {
    "RETRY_MAX_ATTEMPTS": 3,
    "RETRY_BASE_DELAY": timedelta(seconds=30),
    "RETRY_MAX_DELAY": timedelta(minutes=15),
}


def attempts_of(order) -> list[PaymentTransaction]:
    return list(PaymentTransaction.objects.filter(order=order).order_by("created_at"))


def start_failing(order, actor, error: Exception) -> PaymentTransaction:
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    DummyProvider.script[("create", str(payment.id))] = error
    with pytest.raises((ProviderUnavailable, ValidationFailed)):
        payment_start(payment_id=payment.id, actor=actor)
    return PaymentTransaction.objects.get(pk=payment.id)


def test_retry_delay_doubles_with_jitter_and_is_capped():
    with override_settings(**RETRY):
        for attempt, full in [(1, 30), (2, 60), (3, 120), (4, 240), (10, 900)]:
            delays = {retry_delay(attempt).total_seconds() for _ in range(50)}
            assert all(full / 2 <= d <= full for d in delays), (attempt, delays)
            assert len(delays) > 1  # jitter


@override_settings(**RETRY)
def test_transient_failure_is_retried_on_new_attempts_with_backoff_then_final(
    order, actor, django_capture_on_commit_callbacks
):
    """A transient refusal before the provider accepted anything: each retry is a new attempt
    (retry_of links them), due only after its backoff; after the maximum, it stops and says so."""
    rate_limited = ProviderError("rate limited", code="rate_limited", kind=FailureKind.TRANSIENT)
    exhausted = []
    payment_retry_exhausted.connect(lambda **kw: exhausted.append(kw), weak=False, dispatch_uid="t")
    try:
        with time_machine.travel(T0, tick=False) as clock:
            first = start_failing(order, actor, rate_limited)
            assert first.status == "failed" and first.provider_data["failure_kind"] == "transient"
            DummyProvider.script[("create", "*")] = rate_limited  # every new attempt fails too

            report = retry_pass()
            assert report.scheduled == [str(first.id)] and report.retried == []
            first.refresh_from_db()
            wait = first.next_retry_at - T0
            assert timedelta(seconds=15) <= wait <= timedelta(seconds=30)

            clock.shift(wait - timedelta(seconds=1))
            assert retry_pass().retried == []  # not due yet
            assert len(attempts_of(order)) == 1

            clock.shift(timedelta(seconds=1))
            report = retry_pass()
            assert len(report.retried) == 1
            second = PaymentTransaction.objects.get(pk=report.retried[0])
            assert second.retry_of_id == first.id and second.attempts == 1
            assert second.status == "failed"  # the provider refused again
            assert ("create", str(second.id)) in DummyProvider.calls

            for expected_attempts in (2, 3):
                retry_pass()  # schedules the latest failure
                latest = attempts_of(order)[-1]
                assert latest.next_retry_at is not None
                clock.move_to(latest.next_retry_at)
                retry_pass()
                assert attempts_of(order)[-1].attempts == expected_attempts

            last = attempts_of(order)[-1]
            with django_capture_on_commit_callbacks(execute=True):
                report = retry_pass()
            assert report.exhausted == [str(last.id)]
            assert len(attempts_of(order)) == 4  # the first and three automatic retries
            clock.shift(timedelta(days=1))
            assert retry_pass().retried == []
            assert len(attempts_of(order)) == 4
    finally:
        payment_retry_exhausted.disconnect(dispatch_uid="t")
    assert exhausted and exhausted[0]["attempts"] == 3
    assert OrderPaymentEvent.objects.filter(payment_id=last.id, action="retry_exhausted").exists()
    # The automatic path has ended; the buyer may still try again.
    DummyProvider.script.clear()
    again = payment_retry(order_id=order.id, actor=actor)
    assert again.status == "pending"


@override_settings(**RETRY)
def test_transient_retry_succeeds_and_stops(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        first = start_failing(
            order, actor, ProviderError("busy", code="busy", kind=FailureKind.TRANSIENT)
        )
        retry_pass()
        first.refresh_from_db()
        clock.move_to(first.next_retry_at)
        report = retry_pass()
        second = PaymentTransaction.objects.get(pk=report.retried[0])
        assert second.status == "pending"  # the provider accepted the new attempt
        assert second.provider_data["auto_retry"] is True
        clock.shift(timedelta(hours=1))
        assert retry_pass().retried == []
    assert len(attempts_of(order)) == 2


@override_settings(**RETRY)
def test_needs_buyer_failure_is_never_retried_blindly(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        declined = ProviderError(
            "card declined", code="card_declined", kind=FailureKind.NEEDS_BUYER
        )
        first = start_failing(order, actor, declined)
        assert first.provider_data["failure_kind"] == "needs_buyer"
        for _ in range(3):
            report = retry_pass()
            assert report.scheduled == report.retried == []
            clock.shift(timedelta(hours=2))
        first.refresh_from_db()
        assert first.next_retry_at is None
        assert len(attempts_of(order)) == 1
        # The buyer's explicit retry is open, with the same or another method.
        again = payment_retry(order_id=order.id, actor=actor, method="crypto")
        assert again.method == "crypto" and again.retry_of_id == first.id


@override_settings(**RETRY)
def test_final_failure_is_never_retried(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        start_failing(order, actor, ProviderError("fraud", code="fraudulent"))
        clock.shift(timedelta(hours=5))
        assert retry_pass().retried == []
        assert len(attempts_of(order)) == 1


@override_settings(**RETRY)
def test_unknown_outcome_is_reconciled_before_any_retry_and_a_success_is_not_charged_again(
    order, actor
):
    with time_machine.travel(T0, tick=False):
        payment = start_failing(order, actor, ProviderUnavailableError("timeout"))
        assert payment.status == "unknown"
        # The provider did take it: reconciling finds the success; no new attempt is made.
        DummyProvider.script[("fetch", str(payment.id))] = ProviderResult(
            Outcome.SUCCEEDED, raw_status="succeeded"
        )
        DummyProvider.calls.clear()
        report = retry_pass()
    assert report.reconciled == [str(payment.id)] and report.retried == []
    assert DummyProvider.calls == [("fetch", str(payment.id))]  # asked; never created again
    payment.refresh_from_db()
    assert payment.status == "confirmed"
    assert len(attempts_of(order)) == 1
    assert OrderPaymentEvent.objects.filter(
        payment_id=payment.id, action="confirm", details__reconciled=True
    ).exists()


@override_settings(**RETRY)
def test_unknown_outcome_that_reconciles_to_a_transient_failure_is_retried_after_backoff(
    order, actor
):
    with time_machine.travel(T0, tick=False) as clock:
        payment = start_failing(order, actor, ProviderUnavailableError("timeout"))
        DummyProvider.script[("fetch", str(payment.id))] = ProviderResult(
            Outcome.FAILED, failure_kind=FailureKind.TRANSIENT, error_code="not_created"
        )
        report = retry_pass()
        assert report.reconciled == [str(payment.id)] and report.retried == []
        payment.refresh_from_db()
        assert payment.status == "failed" and payment.next_retry_at is not None  # scheduled
        clock.move_to(payment.next_retry_at)
        report = retry_pass()
    assert len(report.retried) == 1
    assert attempts_of(order)[-1].retry_of_id == payment.id


@override_settings(**RETRY)
def test_unknown_outcome_stays_unknown_while_the_provider_cannot_answer(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        payment = start_failing(order, actor, ProviderUnavailableError("timeout"))
        DummyProvider.script[("fetch", "*")] = ProviderUnavailableError("still down")
        for asked in (1, 2, 3):
            report = retry_pass()
            assert report.still_unknown == [str(payment.id)] and report.retried == []
            payment.refresh_from_db()
            assert payment.status == "unknown"
            assert payment.provider_data["reconcile_attempts"] == asked
            assert retry_pass().still_unknown == []  # not asked again before its backoff
            clock.move_to(payment.next_retry_at)
    assert payment.review_status == "flagged"  # staff look at it after the maximum
    assert len(attempts_of(order)) == 1
    assert not any(op == "create" for op, _ in DummyProvider.calls[1:])


@override_settings(**RETRY)
def test_no_automatic_retry_while_another_payment_of_the_order_is_open_or_paid(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        first = start_failing(
            order, actor, ProviderError("busy", code="busy", kind=FailureKind.TRANSIENT)
        )
        retry_pass()
        # The buyer retried by hand meanwhile and that attempt took the money.
        manual = payment_retry(order_id=order.id, actor=actor)
        payment_apply_result(
            payment_id=manual.id,
            actor=Actor.for_webhook("dummy", "evt"),
            result=ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded"),
        )
        first.refresh_from_db()
        clock.move_to(first.next_retry_at)
        report = retry_pass()
    assert report.retried == [] and report.skipped == [str(first.id)]
    assert len(attempts_of(order)) == 2
    first.refresh_from_db()
    assert first.next_retry_at is None
    assert OrderPaymentEvent.objects.filter(payment_id=first.id, action="retry_skipped").exists()


@override_settings(**RETRY)
def test_a_pass_run_twice_retries_once(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        first = start_failing(
            order, actor, ProviderError("busy", code="busy", kind=FailureKind.TRANSIENT)
        )
        retry_pass()
        first.refresh_from_db()
        clock.move_to(first.next_retry_at)
        assert len(retry_pass().retried) == 1
        assert retry_pass().retried == []
    assert len(attempts_of(order)) == 2


@override_settings(**RETRY)
def test_an_automatic_attempt_created_but_never_started_is_started_by_a_later_pass(order, actor):
    with time_machine.travel(T0, tick=False) as clock:
        first = start_failing(
            order, actor, ProviderError("busy", code="busy", kind=FailureKind.TRANSIENT)
        )
        attempt = payment_retry(order_id=first.order_id, actor=actor)  # as if the worker died
        attempt.provider_data = {**attempt.provider_data, "auto_retry": True}
        attempt.save(update_fields=["provider_data"])
        assert retry_pass().started == []
        clock.shift(timedelta(minutes=3))
        assert retry_pass().started == [str(attempt.id)]
    attempt.refresh_from_db()
    assert attempt.provider_status == "pending"


def test_failure_kind_comes_from_the_failure_itself(order, actor):
    """An earlier transient kind (a timeout later reconciled) never makes a later
    unclassified failure look retryable."""
    payment = start_failing(order, actor, ProviderUnavailableError("timeout"))
    assert payment.provider_data["failure_kind"] == "transient"
    payment_apply_result(
        payment_id=payment.id,
        actor=actor,
        result=ProviderResult(Outcome.FAILED, error_code="unknown_error"),
    )
    payment.refresh_from_db()
    assert payment.status == "failed" and payment.provider_data["failure_kind"] == ""


def test_management_command_runs_one_pass(order, actor, capsys):
    payment = start_failing(order, actor, ProviderUnavailableError("timeout"))
    DummyProvider.script[("fetch", str(payment.id))] = ProviderResult(
        Outcome.SUCCEEDED, raw_status="succeeded"
    )
    call_command("retry_failed_payments")
    out = capsys.readouterr().out
    assert "reconciled: 1" in out and str(payment.id) in out
    assert PaymentTransaction.objects.get(pk=payment.id).status == "confirmed"
    assert isinstance(UUID(str(payment.id)), UUID)
