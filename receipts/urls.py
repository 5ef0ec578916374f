"""Receipts and the staff analytics endpoint (the back office's URL module)."""

from django.urls import URLPattern, URLResolver, path

from payments.api.analytics import PaymentAnalyticsApi
from receipts.api import ReceiptPdfApi, ReceiptVerifyApi

app_name = "receipts"

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/receipts/verify", ReceiptVerifyApi.as_view(), name="verify"),
    # Any string: a malformed id is a 404 in the one error format (the selector), not HTML.
    path("api/receipts/<str:receipt_id>/pdf", ReceiptPdfApi.as_view(), name="pdf"),
    path("api/analytics/payments", PaymentAnalyticsApi.as_view(), name="analytics"),
]
