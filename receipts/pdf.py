"""The receipt's PDF: WeasyPrint renders templates/receipts/receipt.html."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from common.money import format_amount, sub
from payments.links import payment_provider_reference
from receipts.models import PaymentReceipt, ReceiptKind


def _party(user: Any) -> dict[str, str]:
    name = (user.get_full_name() or "").strip() if hasattr(user, "get_full_name") else ""
    return {"name": name or user.username, "email": user.email, "username": user.username}


def receipt_context(receipt: PaymentReceipt) -> dict[str, Any]:
    payment = receipt.payment
    order = payment.order
    reference, reference_url = payment_provider_reference(payment)
    cur = payment.currency
    is_credit = receipt.kind == ReceiptKind.CREDIT_NOTE
    original = None
    if is_credit:
        original = payment.receipts.filter(kind=ReceiptKind.RECEIPT).first()
    return {
        "platform": {"name": settings.PLATFORM_NAME, "url": settings.PLATFORM_URL},
        "receipt": receipt,
        "title": "Credit note" if is_credit else "Receipt",
        "is_credit_note": is_credit,
        "original_receipt": original,
        "refund": receipt.refund,
        "buyer": _party(order.buyer),
        "seller": _party(order.seller),
        "order": order,
        "payment": payment,
        "currency": cur,
        "amount": format_amount(receipt.amount, cur),
        "payment_amount": format_amount(payment.amount, cur),
        "fee": format_amount(payment.fee_amount, cur),
        "net": format_amount(sub(payment.amount, payment.fee_amount), cur),
        "method": payment.get_method_display(),
        "reference": reference,
        "reference_url": reference_url,
        "is_chain": bool(payment.transaction_hash),
        "issued_at": receipt.issued_at,
        "iso_issued_at": receipt.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def receipt_html(receipt: PaymentReceipt) -> str:
    return render_to_string("receipts/receipt.html", receipt_context(receipt))


class ResourceRefused(ValueError):
    """A receipt asked WeasyPrint for a URL: receipts embed everything they show."""


def refuse_every_url(url: str, *args: Any, **kwargs: Any) -> Any:
    """No file, no network: a template mistake that put user input into a URL
    (``file:///etc/passwd``) cannot read anything into a receipt."""
    raise ResourceRefused(f"receipts load no resources ({url[:80]!r})")


#: Held while SOURCE_DATE_EPOCH names one receipt's time (the environment is the process's).
_EPOCH_LOCK = threading.Lock()


@contextmanager
def stamped_at(moment: datetime) -> Iterator[None]:
    """Fonts embedded meanwhile carry ``moment`` as their modification time. fontTools stamps
    each subset font it writes with the current second unless SOURCE_DATE_EPOCH says otherwise
    (the reproducible-builds convention), so two renders a second apart differed in bytes."""
    with _EPOCH_LOCK:
        before = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = str(int(moment.timestamp()))
        try:
            yield
        finally:
            if before is None:
                del os.environ["SOURCE_DATE_EPOCH"]
            else:
                os.environ["SOURCE_DATE_EPOCH"] = before


def receipt_pdf_bytes(receipt: PaymentReceipt) -> bytes:
    """The receipt's PDF: the same bytes for the same receipt, whenever and wherever rendered."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    class RefusingFetcher(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            return refuse_every_url(url)

    fetcher = RefusingFetcher(allowed_protocols=frozenset())
    with stamped_at(receipt.issued_at):
        return HTML(string=receipt_html(receipt), url_fetcher=fetcher).write_pdf()
