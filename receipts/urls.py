"""Receipts and the staff analytics endpoint (the back office's URL module)."""

from django.urls import URLPattern, URLResolver

from common.urls import slash_optional
from payments.api.analytics import PaymentAnalyticsView
from receipts.api import ReceiptPdfView, ReceiptVerifyView

app_name = "receipts"

urlpatterns: list[URLPattern | URLResolver] = [
    *slash_optional("api/receipts/verify", ReceiptVerifyView.as_view(), "verify"),
    # Any string: a malformed id is a 404 in the one error format (the selector), not HTML.
    *slash_optional("api/receipts/<str:receipt_id>/pdf", ReceiptPdfView.as_view(), "pdf"),
    *slash_optional("api/analytics/payments", PaymentAnalyticsView.as_view(), "analytics"),
]
