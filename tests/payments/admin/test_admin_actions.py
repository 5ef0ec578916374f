"""The back office's actions call the payment services, are attributed to the staff member,
and are refused (not shown, 403 when posted) without their permission."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from orders.audit import Actor
from orders.models import OrderPaymentEvent
from payments.models import PaymentTransaction, Refund, WebhookEvent
from payments.services.core import lock_payment, payment_flag
from payments.services.disputes import payment_open_dispute
from receipts.models import PaymentReceipt
from tests.factories import OrderFactory
from tests.payflows import (
    TX_HASH,
    fail_payment,
    paid_card_payment,
    paid_chain_payment,
    start_payment,
)

pytestmark = pytest.mark.django_db


def change_url(payment):  # type: ignore[no-untyped-def]
    return reverse("admin:payments_paymenttransaction_change", args=[payment.pk])


def url(name, payment):  # type: ignore[no-untyped-def]
    return reverse(f"admin:payments_paymenttransaction_{name}", args=[payment.pk])


def flag(payment, reason="amount_mismatch"):  # type: ignore[no-untyped-def]
    from django.db import transaction

    with transaction.atomic():
        _, locked = lock_payment(payment.id)
        payment_flag(locked, reason, actor=Actor.for_job("monitor"), details={"x": 1})
    return PaymentTransaction.objects.get(pk=payment.pk)


# --- refund ---------------------------------------------------------------------------------
def test_partial_refund_through_the_form_is_attributed(client, support, order):
    payment = paid_card_payment(order)
    client.force_login(support)
    page = client.get(change_url(payment))
    assert page.status_code == 200
    assert b'id="tool-refund"' in page.content
    form = client.get(url("refund", payment))
    assert form.status_code == 200
    assert form.context["form"].initial["amount"] == "100.00"  # the remaining refundable
    done = client.post(url("refund", payment), {"amount": "40.00", "reason": "scratched"})
    assert done.status_code == 302 and done["Location"] == change_url(payment)
    refund = Refund.objects.get(payment=payment)
    assert refund.amount == Decimal("40.00") and refund.status == "succeeded"
    assert refund.requested_by == support
    events = OrderPaymentEvent.objects.filter(refund_id=refund.id)
    assert events.filter(action="request", actor_type="admin", actor_user=support).exists()
    assert events.filter(action="succeed", actor_user=support).exists()
    # The next form offers what is left.
    assert client.get(url("refund", payment)).context["form"].initial["amount"] == "60.00"
    page = client.get(change_url(payment))
    assert b"refunds-group" in page.content and b"scratched" in page.content  # refund inline
    assert b"audit-trail" in page.content and b"support" in page.content


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("100.01", "At most 100.00 USD"),
        ("abc", "plain decimal string"),
        ("1.001", "at most 2 decimal"),
        ("0", "greater than zero"),
    ],
)
def test_refund_form_rejects_bad_amounts_and_writes_nothing(
    client, support, order, amount, message
):
    payment = paid_card_payment(order)
    client.force_login(support)
    response = client.post(url("refund", payment), {"amount": amount, "reason": "x"})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Refund.objects.exists()


def test_refund_of_an_unpaid_payment_is_refused_by_the_service(client, support, order):
    payment = start_payment(order)
    client.force_login(support)
    response = client.post(url("refund", payment), {"amount": "1.00", "reason": "x"})
    assert response.status_code == 200 and not Refund.objects.exists()


def test_staff_without_permission_neither_sees_nor_posts_refund(client, clerk, order):
    payment = paid_card_payment(order)
    client.force_login(clerk)
    page = client.get(change_url(payment))
    assert page.status_code == 200 and b"tool-refund" not in page.content
    changelist = client.get(reverse("admin:payments_paymenttransaction_changelist"))
    assert changelist.status_code == 200
    assert b"refund_action" not in changelist.content
    assert client.get(url("refund", payment)).status_code == 403
    assert client.post(url("refund", payment), {"amount": "1", "reason": "x"}).status_code == 403
    direct = client.post(
        reverse("admin:payments_paymenttransaction_changelist"),
        {"action": "refund_action", "_selected_action": [str(payment.pk)]},
    )
    assert direct.status_code == 403
    for name in ("review", "retry", "cancel", "resolve_dispute"):
        assert client.post(url(name, payment), {"note": "x"}).status_code == 403
    assert client.get(reverse("admin:payments_flaggedpayment_changelist")).status_code == 403
    assert not Refund.objects.exists()


def test_changelist_refund_action_opens_the_form(client, support, order):
    payment = paid_card_payment(order)
    client.force_login(support)
    response = client.post(
        reverse("admin:payments_paymenttransaction_changelist"),
        {"action": "refund_action", "_selected_action": [str(payment.pk)]},
    )
    assert response.status_code == 302 and response["Location"] == url("refund", payment)


# --- review queue ---------------------------------------------------------------------------
def test_review_queue_lists_flagged_and_filters_by_reason(client, support):
    mismatch = flag(paid_chain_payment(OrderFactory()), "amount_mismatch")
    late = flag(paid_card_payment(OrderFactory(), pi="pi_late"), "late_payment")
    paid_card_payment(OrderFactory(), pi="pi_clean")
    client.force_login(support)
    queue = reverse("admin:payments_flaggedpayment_changelist")
    everything = client.get(queue)
    assert [p.pk for p in everything.context["cl"].result_list] == [mismatch.pk, late.pk]
    filtered = client.get(queue, {"reason": "late_payment"})
    assert [p.pk for p in filtered.context["cl"].result_list] == [late.pk]
    by_method = client.get(queue, {"method__exact": "crypto"})
    assert [p.pk for p in by_method.context["cl"].result_list] == [mismatch.pk]


def test_bulk_approve_with_a_note(client, support):
    payments = [flag(paid_card_payment(OrderFactory(), pi=f"pi_{i}")) for i in range(2)]
    client.force_login(support)
    queue = reverse("admin:payments_flaggedpayment_changelist")
    selected = [str(p.pk) for p in payments]
    ask = client.post(queue, {"action": "approve_action", "_selected_action": selected})
    assert ask.status_code == 200 and b"review-form" in ask.content
    done = client.post(
        queue,
        {"action": "approve_action", "_selected_action": selected, "apply": "1", "note": "ok"},
    )
    assert done.status_code == 302
    for p in payments:
        p.refresh_from_db()
        assert p.review_status == "approved" and p.review_note == "ok"
        event = OrderPaymentEvent.objects.get(payment_id=p.id, action="approve_review")
        assert event.actor_user == support and event.details["note"] == "ok"
    assert client.get(queue).context["cl"].result_count == 0


def test_reject_from_the_payment_page(client, support, order):
    payment = flag(paid_card_payment(order))
    client.force_login(support)
    assert b'id="tool-review"' in client.get(change_url(payment)).content
    response = client.post(url("review", payment), {"decision": "reject", "note": "fraud"})
    assert response.status_code == 302
    payment.refresh_from_db()
    assert payment.review_status == "rejected"
    assert OrderPaymentEvent.objects.filter(
        payment_id=payment.id, action="reject_review", actor_user=support
    ).exists()
    assert (
        client.post(url("review", payment), {"decision": "approve", "note": "x"}).status_code == 200
    )


def test_review_note_is_required(client, support, order):
    payment = flag(paid_card_payment(order))
    client.force_login(support)
    response = client.post(url("review", payment), {"decision": "approve", "note": ""})
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.review_status == "flagged"


# --- retry, cancel, dispute -----------------------------------------------------------------
def test_retry_a_failed_payment(client, support, order):
    failed = fail_payment(start_payment(order))
    client.force_login(support)
    response = client.post(url("retry", failed), {"note": "buyer asked"})
    assert response.status_code == 302
    new = PaymentTransaction.objects.exclude(pk=failed.pk).get()
    assert new.retry_of_id == failed.pk
    assert OrderPaymentEvent.objects.filter(
        payment_id=new.id, action="create", actor_user=support
    ).exists()


def test_retry_opens_the_new_attempt_with_its_provider(client, support, order):
    from payments.providers.dummy import DummyProvider

    failed = fail_payment(start_payment(order))
    client.force_login(support)
    assert client.post(url("retry", failed), {"note": "buyer asked"}).status_code == 302
    new = PaymentTransaction.objects.exclude(pk=failed.pk).get()
    assert ("create", str(new.id)) in DummyProvider.calls
    assert new.provider_status == "pending"  # the provider's answer was applied


def test_retry_action_opens_the_attempt_and_reports_a_refusal(client, support, order):
    from payments.providers.base import FailureKind, ProviderError
    from payments.providers.dummy import DummyProvider

    failed = fail_payment(start_payment(order))
    DummyProvider.script[("create", "*")] = ProviderError(
        "declined", code="card_declined", kind=FailureKind.NEEDS_BUYER
    )
    client.force_login(support)
    changelist = reverse("admin:payments_paymenttransaction_changelist")
    page = client.post(
        changelist, {"action": "retry_action", "_selected_action": [failed.pk]}, follow=True
    )
    new = PaymentTransaction.objects.exclude(pk=failed.pk).get()
    assert ("create", str(new.id)) in DummyProvider.calls
    assert (new.status, new.failure_code) == ("failed", "card_declined")
    assert "card_declined" in page.content.decode()


def test_cancel_a_pending_payment(client, support, order):
    pending = start_payment(order)
    client.force_login(support)
    assert b'id="tool-cancel"' in client.get(change_url(pending)).content
    assert client.post(url("cancel", pending), {"note": "duplicate"}).status_code == 302
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    assert OrderPaymentEvent.objects.filter(
        payment_id=pending.id, action="cancel", actor_user=support
    ).exists()


@pytest.mark.parametrize(("outcome", "status"), [("refund", "refunded"), ("release", "confirmed")])
def test_resolve_a_dispute(client, support, order, outcome, status):
    payment = paid_card_payment(order)
    payment_open_dispute(payment_id=payment.id, actor=Actor.for_webhook("dummy", "dp"))
    client.force_login(support)
    assert b"tool-resolve" in client.get(change_url(payment)).content
    response = client.post(url("resolve_dispute", payment), {"outcome": outcome, "note": "n"})
    assert response.status_code == 302
    payment.refresh_from_db()
    assert payment.status == status
    assert OrderPaymentEvent.objects.filter(
        payment_id=payment.id,
        action="close_dispute" if status == "confirmed" else "refund_fully",
        actor_user=support,
    ).exists()


# --- receipts and webhooks ------------------------------------------------------------------
def test_regenerate_receipt_from_the_payment_page(
    client, support, order, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order)
    receipt = PaymentReceipt.objects.get(payment=payment)
    client.force_login(support)
    page = client.get(change_url(payment))
    assert receipt.number.encode() in page.content and b"tool-regenerate" in page.content
    regen = reverse("admin:payments_paymenttransaction_regenerate_receipt", args=[payment.pk])
    assert client.get(regen).status_code == 200
    assert client.post(regen).status_code == 302
    assert OrderPaymentEvent.objects.filter(
        payment_id=payment.id, action="regenerate", actor_user=support
    ).exists()


def test_regenerate_is_403_without_permission(client, clerk, order):
    payment = paid_card_payment(order)
    client.force_login(clerk)
    regen = reverse("admin:payments_paymenttransaction_regenerate_receipt", args=[payment.pk])
    assert client.post(regen).status_code == 403
    assert not PaymentReceipt.objects.exists()


class RecordingSource:
    provider = "testsrc"
    processed: list[str] = []
    fail = True

    def matches(self, headers):  # type: ignore[no-untyped-def]
        return False

    def verify(self, body, headers):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def process(self, event):  # type: ignore[no-untyped-def]
        if RecordingSource.fail:
            raise RuntimeError("downstream broke")
        RecordingSource.processed.append(event.event_id)


def test_replay_webhook_event(client, support, clerk, settings):
    from payments.webhooks.inbox import webhook_process, webhook_sources

    settings.WEBHOOK_SOURCES = [f"{__name__}.RecordingSource"]
    webhook_sources.cache_clear()
    try:
        event = WebhookEvent.objects.create(
            provider="testsrc", event_id="evt_1", event_type="x", payload={}
        )
        with pytest.raises(RuntimeError):
            webhook_process(event.id)
        event.refresh_from_db()
        assert event.status == "failed"
        changelist = reverse("admin:payments_webhookevent_changelist")
        client.force_login(clerk)
        forbidden = client.post(
            changelist, {"action": "replay_action", "_selected_action": [event.pk]}
        )
        assert forbidden.status_code == 403
        RecordingSource.fail = False
        client.force_login(support)
        done = client.post(changelist, {"action": "replay_action", "_selected_action": [event.pk]})
        assert done.status_code == 302
        event.refresh_from_db()
        assert event.status == "processed" and RecordingSource.processed == ["evt_1"]
    finally:
        RecordingSource.fail = True
        webhook_sources.cache_clear()


def test_audit_and_webhook_events_are_read_only(client, staff, order):
    payment = paid_card_payment(order)
    event = OrderPaymentEvent.objects.filter(payment_id=payment.id).first()
    hook = WebhookEvent.objects.create(provider="p", event_id="e", event_type="t", payload={})
    client.force_login(staff)  # even a superuser
    for model, obj in (("orders_orderpaymentevent", event), ("payments_webhookevent", hook)):
        change = reverse(f"admin:{model}_change", args=[obj.pk])
        assert client.get(change).status_code == 200
        assert client.post(change, {"action": "x"}).status_code == 403
        assert client.get(reverse(f"admin:{model}_add")).status_code == 403
        assert client.post(reverse(f"admin:{model}_delete", args=[obj.pk])).status_code == 403


# --- lists: search, filters, links ----------------------------------------------------------
def test_search_by_hash_intent_order_and_email(client, staff):
    chain = paid_chain_payment(OrderFactory())
    card = paid_card_payment(OrderFactory(), pi="pi_3Searchable")
    client.force_login(staff)
    changelist = reverse("admin:payments_paymenttransaction_changelist")

    def found(q):  # type: ignore[no-untyped-def]
        return [p.pk for p in client.get(changelist, {"q": q}).context["cl"].result_list]

    assert found(TX_HASH) == [chain.pk]
    assert found("pi_3Searchable") == [card.pk]
    assert found(str(card.order_id)) == [card.pk]
    assert found(str(chain.pk)) == [chain.pk]
    assert found(card.order.buyer.email) == [card.pk]
    assert found(chain.order.seller.email) == [chain.pk]
    listing = client.get(changelist, {"method__exact": "crypto", "currency__exact": "USD"})
    assert [p.pk for p in listing.context["cl"].result_list] == [chain.pk]
    assert client.get(changelist, {"created_at__year": "2001"}).context["cl"].result_count == 0
    page = client.get(changelist).content.decode()
    assert f"https://etherscan.io/tx/{TX_HASH}" in page
    assert "https://dashboard.stripe.com/test/payments/pi_3Searchable" in page


def test_order_page_lists_its_payments_and_is_read_only(client, staff, order):
    payment = paid_card_payment(order)
    client.force_login(staff)
    page = client.get(reverse("admin:orders_order_change", args=[order.pk]))
    assert page.status_code == 200
    assert change_url(payment).encode() in page.content
    response = client.post(reverse("admin:orders_order_change", args=[order.pk]), {"amount": "1"})
    assert response.status_code == 403
    found = client.get(reverse("admin:orders_order_changelist"), {"q": str(order.pk)})
    assert [o.pk for o in found.context["cl"].result_list] == [order.pk]
