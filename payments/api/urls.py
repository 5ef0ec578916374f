"""The client API's routes. Every path answers with and without a trailing slash."""

from django.urls import URLPattern, URLResolver

from common.urls import slash_optional
from payments.api.escrow import ConfirmDeliveryView, DisputeView, ResolveDisputeView
from payments.api.orders import OrderDetailView, OrderListCreateView, PaymentStatusView
from payments.api.payments import (
    MonitorBlockchainView,
    PaymentRefundView,
    PaymentRetryView,
    PaymentStatusUpdateView,
    PaymentTransactionCreateView,
)

ORDER = "api/orders/<str:order_id>"


urlpatterns: list[URLPattern | URLResolver] = [
    *slash_optional(f"{ORDER}/confirm-delivery", ConfirmDeliveryView.as_view(), "confirm-delivery"),
    *slash_optional(f"{ORDER}/dispute", DisputeView.as_view(), "order-dispute"),
    *slash_optional(f"{ORDER}/resolve-dispute", ResolveDisputeView.as_view(), "resolve-dispute"),
    *slash_optional("api/orders", OrderListCreateView.as_view(), "api-orders"),
    *slash_optional(
        "api/orders/payment/monitor-blockchain",
        MonitorBlockchainView.as_view(),
        "api-payment-monitor-blockchain",
    ),
    *slash_optional(
        "api/orders/payment-transactions/<str:transaction_id>/status",
        PaymentStatusUpdateView.as_view(),
        "api-payment-transaction-status",
    ),
    *slash_optional("api/orders/<str:order_id>", OrderDetailView.as_view(), "api-order"),
    *slash_optional(
        "api/orders/<str:order_id>/payment-transactions",
        PaymentTransactionCreateView.as_view(),
        "api-payment-transactions",
    ),
    *slash_optional(
        "api/orders/<str:order_id>/payment-status",
        PaymentStatusView.as_view(),
        "api-payment-status",
    ),
    *slash_optional(
        "api/orders/<str:order_id>/payment/retry", PaymentRetryView.as_view(), "api-payment-retry"
    ),
    *slash_optional(
        "api/orders/<str:order_id>/payment/refund",
        PaymentRefundView.as_view(),
        "api-payment-refund",
    ),
]
