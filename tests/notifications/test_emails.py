"""Payment emails: content and count per event, once even when the task runs twice."""

from __future__ import annotations

import pytest
import time_machine
from django.core import mail

from notifications.models import Notification
from notifications.tasks import send_payment_notification
from orders.audit import Actor
from payments.providers.base import FailureKind
from payments.services.disputes import payment_close_dispute, payment_open_dispute
from payments.services.payments import payment_update_status
from payments.services.refunds import payment_refund
from tests.payflows import fail_payment, paid_card_payment, start_payment

pytestmark = pytest.mark.django_db


def by_recipient(kind_subject: str) -> dict[str, mail.EmailMessage]:
    return {m.to[0]: m for m in mail.outbox if kind_subject in m.subject}


def html_of(message) -> str:  # type: ignore[no-untyped-def]
    return next(content for content, mime in message.alternatives if mime == "text/html")


def test_confirmed_emails_buyer_and_seller_once(order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order, pi="pi_3MailConfirm")
    sent = by_recipient("Payment confirmed")
    assert set(sent) == {order.buyer.email, order.seller.email}
    assert len(mail.outbox) == 2
    buyer_mail, seller_mail = sent[order.buyer.email], sent[order.seller.email]
    assert "Your payment of 100.00 USD is confirmed" in buyer_mail.body
    assert "pi_3MailConfirm" in buyer_mail.body
    assert "you receive 100.00 USD" in seller_mail.body
    assert "<strong>100.00 USD</strong>" in html_of(buyer_mail)
    assert str(order.id) in html_of(seller_mail)

    # The task runs again (a redelivery): nothing more goes out.
    key = f"payment_confirmed:{payment.id}"
    assert send_payment_notification("payment_confirmed", key, str(payment.id)) == 0
    assert len(mail.outbox) == 2
    assert Notification.objects.filter(event_key=key, status="sent").count() == 2


def test_failed_email_lists_the_methods_to_retry_with(order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        fail_payment(start_payment(order))
    sent = by_recipient("Payment failed")
    assert len(mail.outbox) == 2
    buyer_mail = sent[order.buyer.email]
    assert "Your card was declined." in buyer_mail.body
    assert "You can retry the order with:" in buyer_mail.body
    assert "- Card (fiat)" in buyer_mail.body
    assert "Your card was declined.." not in buyer_mail.body
    assert "Crypto" not in buyer_mail.body  # USD: card only
    assert "<li>Card (fiat)</li>" in html_of(buyer_mail)
    assert "retry" not in sent[order.seller.email].body


def test_final_failure_does_not_offer_the_same_method(order, django_capture_on_commit_callbacks):
    from tests.factories import OrderFactory

    eth_order = OrderFactory(buyer=order.buyer, seller=order.seller, currency="ETH")
    with django_capture_on_commit_callbacks(execute=True):
        fail_payment(start_payment(eth_order, method="crypto"), failure_kind=FailureKind.FINAL)
    body = by_recipient("Payment failed")[order.buyer.email].body
    assert "- Escrow (escrow)" in body and "- Crypto (crypto)" not in body


def test_refund_emails_and_task_twice(order, staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        refund = payment_refund(
            order_id=order.id, actor=Actor.for_admin(staff), amount="30.00", reason="late"
        )
    sent = by_recipient("Refund of 30.00 USD")
    assert set(sent) == {order.buyer.email, order.seller.email}
    assert len(mail.outbox) == 2
    assert "30.00 USD was refunded to you (late)" in sent[order.buyer.email].body
    assert "Refunded so far: 30.00 USD of 100.00 USD" in sent[order.buyer.email].body
    for _ in range(2):
        send_payment_notification(
            "payment_refunded", f"payment_refunded:{refund.id}", str(payment.id), str(refund.id)
        )
    assert len(mail.outbox) == 2


def test_dispute_emails_buyer_seller_and_operators(
    order, settings, django_capture_on_commit_callbacks
):
    settings.OPERATOR_EMAILS = ["ops@orderpay.example"]
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        payment_open_dispute(payment_id=payment.id, actor=Actor.for_webhook("dummy", "dp_1"))
    sent = by_recipient("Payment disputed")
    assert set(sent) == {order.buyer.email, order.seller.email, "ops@orderpay.example"}
    assert "proof of shipping" in sent[order.seller.email].body
    assert len(mail.outbox) == 3
    # Won, then disputed again: a second dispute is a second event.
    with django_capture_on_commit_callbacks(execute=True):
        payment_close_dispute(payment_id=payment.id, actor=Actor.system(), outcome="won")
        payment_open_dispute(payment_id=payment.id, actor=Actor.for_webhook("dummy", "dp_2"))
    assert len([m for m in mail.outbox if "disputed" in m.subject]) == 6


def test_escrow_release_emails(order, staff, django_capture_on_commit_callbacks):
    from tests.factories import OrderFactory

    eth_order = OrderFactory(buyer=order.buyer, seller=order.seller, currency="ETH")
    with django_capture_on_commit_callbacks(execute=True):
        from tests.payflows import confirm_payment

        payment = confirm_payment(start_payment(eth_order, method="escrow"))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        payment_update_status(
            payment_id=payment.id, status="completed", actor=Actor.for_admin(staff)
        )
    sent = by_recipient("Escrow released")
    assert len(mail.outbox) == 2
    assert "was released to you" in sent[order.seller.email].body
    assert "released to the seller" in sent[order.buyer.email].body


def test_card_completion_sends_no_escrow_email(order, staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        payment_update_status(
            payment_id=payment.id, status="completed", actor=Actor.for_admin(staff)
        )
    assert mail.outbox == []


def test_failed_send_is_kept_and_retried(order, monkeypatch, django_capture_on_commit_callbacks):
    from django.core.mail.backends.locmem import EmailBackend

    payment = paid_card_payment(order)
    calls = {"n": 0}
    original = EmailBackend.send_messages

    def flaky(self, messages):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("smtp down")
        return original(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", flaky)
    key = f"payment_confirmed:{payment.id}"
    with pytest.raises(ConnectionError):
        send_payment_notification("payment_confirmed", key, str(payment.id))
    row = Notification.objects.get(event_key=key, recipient=order.buyer.email)
    assert row.status == "failed" and "smtp down" in row.last_error
    assert send_payment_notification("payment_confirmed", key, str(payment.id)) == 2
    assert send_payment_notification("payment_confirmed", key, str(payment.id)) == 0
    assert len(mail.outbox) == 2


def test_sweeper_sends_the_emails_whose_enqueue_was_lost(order, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from notifications.tasks import sweep_unsent

    # The payment is confirmed, but its on-commit callbacks (the email's enqueue) never run.
    with django_capture_on_commit_callbacks(execute=False):
        payment = paid_card_payment(order, pi="pi_3MailLost")
    assert mail.outbox == []
    assert sweep_unsent() == 0  # too recent: the task may still be on its way

    later = timezone.now() + timedelta(minutes=10)
    with time_machine.travel(later, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep_unsent() == 1
        assert set(by_recipient("Payment confirmed")) == {order.buyer.email, order.seller.email}
        assert sweep_unsent() == 0  # sent once; a second sweep finds nothing
    key = f"payment_confirmed:{payment.id}"
    assert Notification.objects.filter(event_key=key, status="sent").count() == 2
    assert len(mail.outbox) == 2


def test_card_emails_carry_no_merchant_dashboard_link(
    order, settings, django_capture_on_commit_callbacks
):
    settings.STRIPE_DASHBOARD_URL = "https://dashboard.stripe.com/test"
    with django_capture_on_commit_callbacks(execute=True):
        paid_card_payment(order, pi="pi_3MailNoDashboard")
    assert len(mail.outbox) == 2
    for message in mail.outbox:
        assert "pi_3MailNoDashboard" in message.body  # the reference stays, for support
        assert "dashboard.stripe.com" not in message.body + html_of(message)
