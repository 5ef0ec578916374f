"""Reads on receipts that enforce who may see what."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.urls import reverse

from common.errors import NotFound
from common.money import format_amount
from orders.selectors import order_list_for_user
from payments.models import PAID_STATES, PaymentTransaction
from receipts.models import PaymentReceipt, ReceiptKind


def receipt_list_for_user(user: Any) -> QuerySet[PaymentReceipt]:
    """Receipts of the orders ``user`` may see (buyer, seller; staff see all)."""
    qs = PaymentReceipt.objects.select_related("payment", "refund")
    if user.is_staff:
        return qs
    return qs.filter(order_id__in=order_list_for_user(user).values("id"))


def receipt_get_for_user(user: Any, receipt_id: UUID | str) -> PaymentReceipt:
    try:
        return receipt_list_for_user(user).get(pk=receipt_id)
    except (PaymentReceipt.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("Receipt not found.", code="receipt_not_found") from None


def receipt_summaries(
    *, order_id: UUID | str | None = None, payment_id: UUID | str | None = None
) -> list[dict[str, Any]]:
    """The receipts and credit notes of an order (or of one payment), oldest first, in one
    query, as the payment-status API lists them (``pdf_url`` is the download path; the caller
    authorises the order)."""
    if (order_id is None) == (payment_id is None):
        raise TypeError("Give order_id or payment_id.")
    where = {"order_id": order_id} if order_id is not None else {"payment_id": payment_id}
    rows = (
        PaymentReceipt.objects.filter(**where)
        .order_by("issued_at", "number")
        .values("id", "kind", "number", "amount", "currency", "issued_at")
    )
    return [
        {
            "id": str(r["id"]),
            "kind": r["kind"],
            "number": r["number"],
            "amount": format_amount(r["amount"], r["currency"]),
            "currency": r["currency"],
            "issued_at": r["issued_at"],
            "pdf_url": reverse("receipts:pdf", args=[r["id"]]),
        }
        for r in rows
    ]


def payments_without_receipt() -> QuerySet[PaymentTransaction]:
    """Payments that took money (confirmed) and have no receipt yet: the receipt sweeper's
    work, and the receipt backlog the metrics show."""
    return PaymentTransaction.objects.filter(
        status__in=PAID_STATES, confirmed_at__isnull=False
    ).exclude(receipts__kind=ReceiptKind.RECEIPT)
