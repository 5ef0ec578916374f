"""Reads on receipts that enforce who may see what."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.urls import reverse

from orders.errors import NotFound
from orders.money import format_amount
from orders.selectors import order_list_for_user

from .models import PaymentReceipt


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


def receipt_summaries(payment_id: UUID | str) -> list[dict[str, Any]]:
    """The payment's receipts and credit notes as the payment-status API lists them."""
    return [
        {
            "id": str(r.id),
            "kind": r.kind,
            "number": r.number,
            "amount": format_amount(r.amount, r.currency),
            "currency": r.currency,
            "issued_at": r.issued_at.isoformat(),
            "sha256": r.sha256,
            "pdf_url": reverse("receipts:pdf", args=[r.id]),
        }
        for r in PaymentReceipt.objects.filter(payment_id=payment_id).order_by("issued_at")
    ]
