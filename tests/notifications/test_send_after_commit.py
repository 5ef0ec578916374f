"""An email leaves only after its claim is committed, and its result is recorded after: a
database connection dropped around the send no longer undoes the record of an email that went
out (8 of 60 "Payment confirmed" emails went twice). One window stays: a worker that dies
between sending and recording; another sends again only after SEND_LEASE."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection
from django.utils import timezone

from notifications.models import Notification
from notifications.services import SEND_LEASE
from notifications.tasks import send_payment_notification
from tests.dbfaults import terminate_this_connection
from tests.payflows import paid_card_payment

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_email_leaves_outside_any_transaction_after_its_claim(order, monkeypatch):
    payment = paid_card_payment(order)
    key = f"payment_confirmed:{payment.id}:x"
    seen = []
    original = EmailBackend.send_messages

    def watching(self, messages):  # type: ignore[no-untyped-def]
        row = Notification.objects.get(event_key=key, recipient=messages[0].to[0])
        seen.append((connection.in_atomic_block, row.status, row.attempts))
        return original(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", watching)
    mail.outbox.clear()
    assert send_payment_notification("payment_confirmed", key, str(payment.id)) == 2
    assert seen == [(False, "sending", 1), (False, "sending", 1)]
    ids = {m.extra_headers["Message-ID"] for m in mail.outbox}
    assert len(ids) == 2 and all(i.startswith("<notification-") for i in ids)


@pytest.mark.postgres
def test_a_connection_dropped_while_the_email_leaves_is_recorded_on_a_new_one(order, monkeypatch):
    payment = paid_card_payment(order)
    key = f"payment_confirmed:{payment.id}:z"
    original = EmailBackend.send_messages

    def dropping(self, messages):  # type: ignore[no-untyped-def]
        terminate_this_connection()
        return original(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", dropping)
    mail.outbox.clear()
    assert send_payment_notification("payment_confirmed", key, str(payment.id)) == 2
    monkeypatch.undo()
    rows = Notification.objects.filter(event_key=key)
    assert sorted((r.status, r.attempts) for r in rows) == [("sent", 1), ("sent", 1)]
    # a second run (a redelivered task) finds both recorded: nothing goes out again
    assert send_payment_notification("payment_confirmed", key, str(payment.id)) == 0
    assert len(mail.outbox) == 2


def test_a_lost_record_sends_again_only_after_the_lease(order, monkeypatch):
    payment = paid_card_payment(order)
    key = f"payment_confirmed:{payment.id}:y"
    original = Notification.objects.filter

    class Lost(Exception):
        pass

    def record_lost(*args, **kwargs):  # type: ignore[no-untyped-def]
        qs = original(*args, **kwargs)

        def update(**values):  # type: ignore[no-untyped-def]
            if values.get("status") == Notification.Status.SENT:
                raise Lost("connection dropped while recording")
            return type(qs).update(qs, **values)

        qs.update = update  # type: ignore[method-assign]
        return qs

    mail.outbox.clear()
    monkeypatch.setattr(Notification.objects, "filter", record_lost)
    with pytest.raises(Lost):
        send_payment_notification("payment_confirmed", key, str(payment.id))
    monkeypatch.undo()
    assert len(mail.outbox) == 1  # it went out; its record did not
    # within the lease another run leaves it alone (the first may still be recording)
    assert send_payment_notification("payment_confirmed", key, str(payment.id)) == 1
    assert len(mail.outbox) == 2  # the other recipient only
    row = Notification.objects.get(event_key=key, recipient=mail.outbox[0].to[0])
    assert row.status == "sending"
    Notification.objects.filter(pk=row.pk).update(
        claimed_at=timezone.now() - SEND_LEASE - timedelta(seconds=1)
    )
    assert send_payment_notification("payment_confirmed", key, str(payment.id)) == 1
    assert len(mail.outbox) == 3  # the documented second copy, with the same Message-ID
    assert mail.outbox[2].extra_headers["Message-ID"] == mail.outbox[0].extra_headers["Message-ID"]
