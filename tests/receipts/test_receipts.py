"""Receipts and credit notes: issued once per payment/refund on commit, numbered without gaps,
PDF content read back, hash kept, download authorised, verification."""

from __future__ import annotations

import hashlib
import io
import os
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pypdf import PdfReader
from rest_framework.test import APIClient

from orders.audit import Actor
from orders.models import OrderPaymentEvent
from payments.services.refunds import payment_refund
from receipts.models import PaymentReceipt, ReceiptSequence
from receipts.services import (
    credit_note_issue_for_refund,
    receipt_issue_for_payment,
    receipt_regenerate,
)
from receipts.tasks import issue_payment_receipt, receipts_sweep
from tests.factories import OrderFactory, UserFactory
from tests.payflows import TX_HASH, paid_card_payment, paid_chain_payment, start_payment

pytestmark = pytest.mark.django_db


def pdf_text(receipt: PaymentReceipt) -> str:
    with receipt.pdf.open("rb") as fh:
        data = fh.read()
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def stored_sha(receipt: PaymentReceipt) -> str:
    with receipt.pdf.open("rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_confirming_a_card_payment_issues_one_receipt_on_commit(
    order, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order, pi="pi_3ReceiptCard")
    receipt = PaymentReceipt.objects.get(payment=payment)
    assert receipt.kind == "receipt"
    assert receipt.number.startswith(f"RCPT-{receipt.issued_at.year}-")
    assert receipt.number == f"RCPT-{receipt.year}-{receipt.sequence:06d}"
    assert receipt.amount == Decimal("100.00")
    assert len(receipt.sha256) == 64 and stored_sha(receipt) == receipt.sha256
    text = pdf_text(receipt)
    assert receipt.number in text
    assert "100.00 USD" in text  # amount
    assert "pi_3ReceiptCard" in text  # provider reference
    assert order.buyer.email in text and order.seller.email in text
    assert str(order.id) in text
    assert (
        OrderPaymentEvent.objects.filter(
            payment_id=payment.id, entity="receipt", action="issue"
        ).count()
        == 1
    )


def test_receipt_shows_fee_and_net(order, django_capture_on_commit_callbacks):
    from payments.services.fees import fee_rule_update

    fee_rule_update(
        method="fiat",
        currency="USD",
        percentage=Decimal("2.9"),
        fixed_amount=Decimal("0.30"),
        minimum_fee=None,
        maximum_fee=None,
        actor=Actor.system(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order)
    assert payment.fee_amount == Decimal("3.20")
    text = pdf_text(PaymentReceipt.objects.get(payment=payment))
    assert "3.20 USD" in text and "96.80 USD" in text


def test_chain_receipt_has_hash_explorer_link_and_confirmations(
    order, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_chain_payment(order)
    receipt = PaymentReceipt.objects.get(payment=payment)
    text = pdf_text(receipt).replace("\n", "")
    assert TX_HASH in text
    assert f"https://etherscan.io/tx/{TX_HASH}" in text
    assert "Confirmations12" in text.replace(" ", "")


def test_running_the_task_again_changes_nothing(order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order)
    receipt = PaymentReceipt.objects.get(payment=payment)
    seq = ReceiptSequence.objects.get(kind="receipt")
    assert issue_payment_receipt(str(payment.id)) == receipt.number
    again, created = receipt_issue_for_payment(payment_id=payment.id)
    assert not created and again.pk == receipt.pk and again.sha256 == receipt.sha256
    assert PaymentReceipt.objects.filter(payment=payment).count() == 1
    seq.refresh_from_db()
    assert seq.last_number == receipt.sequence  # no number was burnt


def test_numbers_follow_each_other_without_gaps(django_capture_on_commit_callbacks):
    numbers = []
    for _ in range(3):
        order = OrderFactory()
        with django_capture_on_commit_callbacks(execute=True):
            payment = paid_card_payment(order, pi=f"pi_{order.id.hex}")
        numbers.append(PaymentReceipt.objects.get(payment=payment).sequence)
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]


def test_unpaid_payment_has_no_receipt(order):
    payment = start_payment(order)
    assert issue_payment_receipt(str(payment.id)) is None
    assert not PaymentReceipt.objects.exists()
    assert not ReceiptSequence.objects.filter(last_number__gt=0).exists()


def test_refund_issues_credit_note_once(order, staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order)
        refund = payment_refund(
            order_id=order.id, actor=Actor.for_admin(staff), amount="25.50", reason="damaged"
        )
    note = PaymentReceipt.objects.get(refund=refund)
    assert note.kind == "credit_note" and note.number.startswith("CN-")
    assert note.amount == Decimal("25.50")
    text = pdf_text(note)
    assert note.number in text and "25.50 USD" in text
    original = PaymentReceipt.objects.get(payment=payment, kind="receipt")
    assert original.number in text
    again, created = credit_note_issue_for_refund(refund_id=refund.id)
    assert not created and again.pk == note.pk


def test_regenerate_restores_a_lost_file_with_the_same_hash(
    order, staff, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order)
    receipt = PaymentReceipt.objects.get(payment=payment)
    receipt.pdf.storage.delete(receipt.pdf.name)
    again = receipt_regenerate(receipt_id=receipt.id, actor=Actor.for_admin(staff))
    assert again.sha256 == receipt.sha256 and stored_sha(again) == receipt.sha256
    event = OrderPaymentEvent.objects.get(payment_id=payment.id, action="regenerate")
    assert event.actor_user == staff and event.actor_type == "admin"


def test_sweeper_issues_what_the_lost_enqueue_missed(order):
    payment = paid_card_payment(order)  # on-commit callbacks never ran: nothing enqueued
    assert not PaymentReceipt.objects.exists()
    assert receipts_sweep() == 1
    assert PaymentReceipt.objects.filter(payment=payment).count() == 1
    assert receipts_sweep() == 0


# --- download -------------------------------------------------------------------------------
@pytest.fixture
def receipt(order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = paid_card_payment(order)
    return PaymentReceipt.objects.get(payment=payment)


@pytest.mark.parametrize("who", ["buyer", "seller", "staff"])
def test_pdf_download_for_buyer_seller_and_staff(receipt, order, staff, who):
    user = {"buyer": order.buyer, "seller": order.seller, "staff": staff}[who]
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/receipts/{receipt.id}/pdf")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body.startswith(b"%PDF")
    assert hashlib.sha256(body).hexdigest() == receipt.sha256
    assert response["X-Receipt-SHA256"] == receipt.sha256
    assert receipt.number in response["Content-Disposition"]


def test_pdf_missing_from_storage_is_404_not_ready_and_rendered_again(
    receipt, order, django_capture_on_commit_callbacks
):
    receipt.pdf.storage.delete(receipt.pdf.name)
    client = APIClient()
    client.force_authenticate(order.buyer)
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        response = client.get(f"/api/receipts/{receipt.id}/pdf")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "receipt_not_ready"
    assert len(enqueued) == 1  # the re-render was enqueued (run eagerly here)
    rendered = PaymentReceipt.objects.get(pk=receipt.pk)
    assert rendered.pdf.storage.exists(rendered.pdf.name) and rendered.sha256 == receipt.sha256
    again = client.get(f"/api/receipts/{receipt.id}/pdf")
    assert again.status_code == 200
    assert hashlib.sha256(b"".join(again.streaming_content)).hexdigest() == receipt.sha256


def test_pdf_is_404_for_strangers_and_401_anonymous(receipt):
    client = APIClient()
    assert client.get(f"/api/receipts/{receipt.id}/pdf").status_code == 401
    client.force_authenticate(UserFactory(username="stranger"))
    response = client.get(f"/api/receipts/{receipt.id}/pdf")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "receipt_not_found"
    assert client.get("/api/receipts/not-a-uuid/pdf").status_code == 404


def test_receipt_lookup_is_one_query(receipt, order):
    from receipts.selectors import receipt_get_for_user

    with CaptureQueriesContext(connection) as ctx:
        receipt_get_for_user(order.buyer, receipt.id)
    assert len(ctx.captured_queries) == 1


# --- verification ---------------------------------------------------------------------------
def test_verify_genuine_and_forged(receipt):
    client = APIClient()
    ok = client.get("/api/receipts/verify", {"number": receipt.number, "sha256": receipt.sha256})
    assert ok.status_code == 200
    assert ok.json()["genuine"] is True and ok.json()["amount"] == "100.00"
    forged = client.post(
        "/api/receipts/verify", {"number": receipt.number, "sha256": "0" * 64}, format="json"
    )
    assert forged.status_code == 200 and forged.json() == {
        "number": receipt.number,
        "genuine": False,
    }
    unknown = client.get("/api/receipts/verify", {"number": "RCPT-2020-999999", "sha256": "a" * 64})
    assert unknown.json()["genuine"] is False


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "invalid_request"),
        ({"number": "RCPT-2026-000001", "sha256": "xyz"}, "invalid_sha256"),
        ({"number": "'; drop table", "sha256": "a" * 64}, "invalid_receipt_number"),
    ],
)
def test_verify_rejects_bad_input_with_a_code(db, params, code):
    response = APIClient().get("/api/receipts/verify", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_receipt_summaries_link_to_the_pdf(receipt, order):
    from receipts.selectors import receipt_summaries

    [summary] = receipt_summaries(payment_id=receipt.payment_id)
    assert receipt_summaries(order_id=order.id) == [summary]
    assert summary["number"] == receipt.number and summary["amount"] == "100.00"
    assert summary["pdf_url"] == f"/api/receipts/{receipt.id}/pdf"
    client = APIClient()
    client.force_authenticate(order.buyer)
    assert client.get(summary["pdf_url"]).status_code == 200


def test_a_transient_failure_of_the_receipt_task_is_retried(order, monkeypatch):
    from django.db import OperationalError

    from receipts import services, tasks
    from receipts.tasks import issue_payment_receipt

    payment = paid_card_payment(order)  # on-commit callbacks never ran: nothing issued
    real, calls = services.receipt_issue_for_payment, []

    def flaky(**kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return real(**kwargs)

    monkeypatch.setattr(tasks, "receipt_issue_for_payment", flaky)
    number = issue_payment_receipt.apply((str(payment.id),), throw=False).get()
    assert len(calls) == 2
    assert PaymentReceipt.objects.get(payment=payment).number == number


def test_a_programming_error_is_not_retried(order, monkeypatch):
    from receipts import tasks
    from receipts.tasks import issue_payment_receipt

    payment = paid_card_payment(order)
    calls = []

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs)
        raise KeyError("template variable")

    monkeypatch.setattr(tasks, "receipt_issue_for_payment", broken)
    with pytest.raises(KeyError):
        issue_payment_receipt.apply((str(payment.id),), throw=False).get()
    assert len(calls) == 1


def test_receipts_load_no_url_not_even_a_local_file(order, tmp_path, monkeypatch):
    """A template mistake that put input into a URL cannot read a file into a receipt."""
    from receipts import pdf

    secret = tmp_path / "leak.css"
    secret.write_text('body::after { content: "LEAKED-FILE-CONTENT"; }')
    html = (
        f'<style>@import url("file://{secret}");</style>'
        f'<link rel="stylesheet" href="file://{secret}"><p>receipt body</p>'
    )
    payment = paid_card_payment(order)
    receipt, _ = receipt_issue_for_payment(payment_id=payment.id)
    monkeypatch.setattr(pdf, "receipt_html", lambda receipt: html)
    text = "".join(
        p.extract_text() for p in PdfReader(io.BytesIO(pdf.receipt_pdf_bytes(receipt))).pages
    )
    assert "receipt body" in text
    assert "LEAKED-FILE-CONTENT" not in text
    with pytest.raises(pdf.ResourceRefused):
        pdf.refuse_every_url(f"file://{secret}")


def test_the_same_receipt_renders_to_the_same_bytes_at_another_time(receipt):
    """Embedded fonts carry the receipt's issue time, not the render's (fontTools stamps the
    current second otherwise): a render an hour later has the same hash."""
    import time_machine
    from django.utils import timezone

    from receipts.pdf import receipt_pdf_bytes

    first = receipt_pdf_bytes(receipt)
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=1, seconds=7)):
        later = receipt_pdf_bytes(receipt)
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(later).hexdigest() == receipt.sha256
    assert "SOURCE_DATE_EPOCH" not in os.environ  # the environment is left as it was
