"""Receipts (one per confirmed payment) and credit notes (one per completed refund)."""

from __future__ import annotations

import uuid

from django.core.files.storage import Storage, storages
from django.db import models
from django.utils import timezone

from orders.fields import AmountField, CurrencyField
from payments.models import PaymentTransaction, Refund


def receipts_storage() -> Storage:
    """The storage receipt PDFs live in: ``STORAGES["receipts"]`` (local files by default)."""
    return storages["receipts"] if "receipts" in storages.backends else storages["default"]


def receipt_pdf_key(receipt: PaymentReceipt, filename: str = "") -> str:
    """The one storage key of a receipt's PDF, ``receipts/<year>/<number>.pdf``: every render
    of it (again after a crash, or on another node) writes the same key."""
    return f"receipts/{receipt.year}/{receipt.number}.pdf"


class ReceiptKind(models.TextChoices):
    RECEIPT = "receipt"
    CREDIT_NOTE = "credit_note"


class ReceiptSequence(models.Model):
    """The last number issued per year and kind; locked while a number is taken (no gaps)."""

    year = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=ReceiptKind.choices)
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["year", "kind"], name="receipt_sequence_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.year}: {self.last_number}"


class PaymentReceipt(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=ReceiptKind.choices, default=ReceiptKind.RECEIPT)
    payment = models.ForeignKey(
        PaymentTransaction, on_delete=models.PROTECT, related_name="receipts"
    )
    refund = models.OneToOneField(
        Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_note"
    )
    order_id = models.UUIDField(db_index=True)
    number = models.CharField(max_length=32, unique=True)
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    amount = AmountField()
    currency = CurrencyField()
    pdf = models.FileField(upload_to=receipt_pdf_key, blank=True, storage=receipts_storage)
    sha256 = models.CharField(max_length=64, blank=True)
    issued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["issued_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["payment"],
                condition=models.Q(kind="receipt"),
                name="one_receipt_per_payment",
            ),
            models.UniqueConstraint(
                fields=["kind", "year", "sequence"], name="receipt_number_once"
            ),
        ]

    def __str__(self) -> str:
        return self.number
