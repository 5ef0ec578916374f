"""Issuing receipts and credit notes: exactly once each, numbered without gaps per year.

A number is taken under the row lock of its ``ReceiptSequence`` in the same transaction that
creates the receipt, so a rolled-back issue leaves no hole and two issues never share a
number. The PDF is rendered after that commit; a receipt whose PDF is missing gets it on the
next run (the task, the sweeper or the admin's regenerate action).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from uuid import UUID

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import Conflict, NotFound, ValidationFailed
from common.tasks import enqueue_on_commit
from orders.audit import Actor, record_event
from orders.services import order_lock
from payments.models import PAID_STATES, PaymentTransaction, Refund, RefundStatus
from payments.signals import announce, order_payments_changed
from receipts.models import PaymentReceipt, ReceiptKind, ReceiptSequence, receipt_pdf_key
from receipts.pdf import receipt_pdf_bytes
from receipts.selectors import payments_without_receipt

NUMBER_RE = re.compile(r"^[A-Z]{1,8}-[0-9]{4}-[0-9]{6,12}$")  # the API's pattern, upper case
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def receipt_number(kind: str, year: int, sequence: int) -> str:
    prefix = settings.RECEIPT_NUMBER_PREFIXES[kind]
    return f"{prefix}-{year}-{sequence:06d}"


def _sequence_next(kind: str, year: int) -> int:
    """Take the next number of (kind, year) under its row lock (the caller's transaction)."""
    ReceiptSequence.objects.bulk_create(
        [ReceiptSequence(year=year, kind=kind, last_number=0)], ignore_conflicts=True
    )
    seq = ReceiptSequence.objects.select_for_update().get(year=year, kind=kind)
    seq.last_number += 1
    seq.save(update_fields=["last_number"])
    return seq.last_number


def _issue(
    *,
    kind: str,
    payment: PaymentTransaction,
    refund: Refund | None,
    amount,  # type: ignore[no-untyped-def]
    actor: Actor,
) -> tuple[PaymentReceipt, bool]:
    lookup = {"refund": refund} if refund is not None else {"payment": payment, "kind": kind}
    existing = PaymentReceipt.objects.filter(**lookup).first()
    if existing is not None:
        return existing, False
    now = timezone.now()
    try:
        with transaction.atomic():
            # The order first, as the payment services lock (order, then payment): the receipt
            # row's foreign key takes a share lock on the payment, its audit row one on the
            # order; the other way round it deadlocks with a refund applied meanwhile.
            order_lock(payment.order_id)
            number = _sequence_next(kind, now.year)
            # Re-read under the sequence lock: a concurrent issue for the same payment has
            # committed by now, and the unique constraints catch anything else.
            existing = PaymentReceipt.objects.filter(**lookup).first()
            if existing is not None:
                transaction.set_rollback(True)
                return existing, False
            receipt = PaymentReceipt.objects.create(
                kind=kind,
                payment=payment,
                refund=refund,
                order_id=payment.order_id,
                number=receipt_number(kind, now.year, number),
                year=now.year,
                sequence=number,
                amount=amount,
                currency=payment.currency,
                issued_at=now,
            )
            record_event(
                order_id=payment.order_id,
                entity=kind[:16],
                action="issue",
                actor=actor,
                payment_id=payment.id,
                refund_id=refund.id if refund else None,
                details={"number": receipt.number, "amount": str(amount)},
            )
    except IntegrityError:
        existing = PaymentReceipt.objects.filter(**lookup).first()
        if existing is None:
            raise
        return existing, False
    # Like every change to an order's payments, a new receipt is announced on commit (the
    # payment-status cache starts a new generation).
    transaction.on_commit(
        lambda: announce(order_payments_changed, sender=PaymentReceipt, order_id=receipt.order_id),
        robust=True,
    )
    return receipt, True


def receipt_issue_for_payment(
    *, payment_id: UUID | str, actor: Actor | None = None
) -> tuple[PaymentReceipt, bool]:
    """The payment's receipt, issued now if it has none; returns (receipt, created).

    Only a payment whose money was received has a receipt (409 ``not_paid`` otherwise).
    """
    actor = actor or Actor.for_job("receipts")
    payment = PaymentTransaction.objects.select_related("order").filter(pk=payment_id).first()
    if payment is None:
        raise NotFound("Payment not found.", code="payment_not_found")
    if payment.status not in PAID_STATES or payment.confirmed_at is None:
        raise Conflict(
            "Only a paid payment has a receipt.",
            code="not_paid",
            details={"status": payment.status},
        )
    receipt, created = _issue(
        kind=ReceiptKind.RECEIPT, payment=payment, refund=None, amount=payment.amount, actor=actor
    )
    receipt_render(receipt_id=receipt.id)
    return PaymentReceipt.objects.get(pk=receipt.pk), created


def credit_note_issue_for_refund(
    *, refund_id: UUID | str, actor: Actor | None = None
) -> tuple[PaymentReceipt, bool]:
    """The refund's credit note, issued now if it has none; only for a succeeded refund."""
    actor = actor or Actor.for_job("receipts")
    refund = Refund.objects.select_related("payment__order").filter(pk=refund_id).first()
    if refund is None:
        raise NotFound("Refund not found.", code="refund_not_found")
    if refund.status != RefundStatus.SUCCEEDED:
        raise Conflict(
            "Only a succeeded refund has a credit note.",
            code="refund_not_succeeded",
            details={"status": refund.status},
        )
    receipt, created = _issue(
        kind=ReceiptKind.CREDIT_NOTE,
        payment=refund.payment,
        refund=refund,
        amount=refund.amount,
        actor=actor,
    )
    receipt_render(receipt_id=receipt.id)
    return PaymentReceipt.objects.get(pk=receipt.pk), created


def receipt_render(*, receipt_id: UUID, force: bool = False) -> PaymentReceipt:
    """Render and store the receipt's PDF if it has none (or ``force``) and keep its SHA-256.

    The PDF is deterministic for the same data (its dates are the receipt's), so rendering
    again restores a lost file with the same hash. It is written under the receipt's one key
    (``receipt_pdf_key``), so a render killed before its commit leaves nothing but that key,
    which the next render overwrites: no renamed copies.
    """
    with transaction.atomic():
        receipt = PaymentReceipt.objects.select_for_update().get(pk=receipt_id)
        if (
            receipt.sha256
            and receipt.pdf
            and not force
            and receipt.pdf.storage.exists(receipt.pdf.name)
        ):
            return receipt
        content = receipt_pdf_bytes(receipt)
        storage, key = receipt.pdf.storage, receipt_pdf_key(receipt)
        old_name = receipt.pdf.name if receipt.pdf else ""
        if old_name and old_name != key and storage.exists(old_name):
            storage.delete(old_name)  # a PDF stored under an earlier naming
        if storage.get_available_name(key) != key:  # a storage that renames rather than overwrites
            storage.delete(key)
        stored = storage.save(key, ContentFile(content))
        if stored != key:
            raise RuntimeError(f"Receipt storage wrote {stored!r}, not its key {key!r}.")
        receipt.pdf.name = stored
        receipt.sha256 = hashlib.sha256(content).hexdigest()
        receipt.save(update_fields=["pdf", "sha256"])
    return receipt


def receipt_render_later(*, receipt: PaymentReceipt) -> None:
    """Enqueue the receipt's issue task (on commit), which renders a PDF that is missing or was
    lost from storage again (``receipt_render``; the same data gives the same file and hash)."""
    if receipt.refund_id is not None:
        enqueue_on_commit("receipts.tasks.issue_credit_note", str(receipt.refund_id))
    else:
        enqueue_on_commit("receipts.tasks.issue_payment_receipt", str(receipt.payment_id))


def receipt_regenerate(*, receipt_id: UUID, actor: Actor) -> PaymentReceipt:
    """Render the receipt's PDF again (the admin's action); the audit row keeps both hashes."""
    before = PaymentReceipt.objects.filter(pk=receipt_id).values_list("sha256", flat=True).first()
    if before is None:
        raise NotFound("Receipt not found.", code="receipt_not_found")
    receipt = receipt_render(receipt_id=receipt_id, force=True)
    record_event(
        order_id=receipt.order_id,
        entity=receipt.kind[:16],
        action="regenerate",
        actor=actor,
        payment_id=receipt.payment_id,
        refund_id=receipt.refund_id,
        details={"number": receipt.number, "sha256_before": before, "sha256": receipt.sha256},
    )
    return receipt


def receipt_issue_or_regenerate(*, payment_id: UUID, actor: Actor) -> tuple[PaymentReceipt, bool]:
    """The back office's "Regenerate receipt" on a payment: issue its receipt if it has none,
    else render the PDF again. Returns (receipt, issued)."""
    receipt, created = receipt_issue_for_payment(payment_id=payment_id, actor=actor)
    if not created:
        receipt = receipt_regenerate(receipt_id=receipt.id, actor=actor)
    return receipt, created


def receipt_verify(*, number: str, sha256: str) -> PaymentReceipt | None:
    """The receipt if ``number`` was issued and ``sha256`` is its PDF's hash; else None."""
    number = str(number or "").strip().upper()
    digest = str(sha256 or "").strip().lower()
    if not NUMBER_RE.match(number):
        raise ValidationFailed("Not a receipt number.", code="invalid_receipt_number")
    if not SHA256_RE.match(digest):
        raise ValidationFailed("A SHA-256 is 64 hex digits.", code="invalid_sha256")
    receipt = PaymentReceipt.objects.filter(number=number).first()
    if receipt is None or not receipt.sha256:
        return None
    return receipt if hmac.compare_digest(receipt.sha256, digest) else None


def receipts_missing() -> tuple[list[UUID], list[UUID]]:
    """Paid payments without a receipt and succeeded refunds without a credit note (sweeper)."""
    payments = list(payments_without_receipt().values_list("id", flat=True)[:500])
    refunds = list(
        Refund.objects.filter(status=RefundStatus.SUCCEEDED, credit_note__isnull=True).values_list(
            "id", flat=True
        )[:500]
    )
    unrendered = PaymentReceipt.objects.filter(sha256="")
    payments += [r.payment_id for r in unrendered if r.kind == ReceiptKind.RECEIPT]
    refunds += [r.refund_id for r in unrendered if r.refund_id]
    return payments, refunds
