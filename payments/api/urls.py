"""The client API's routes. Every path answers with and without a trailing slash."""

from django.urls import URLPattern, URLResolver, path, re_path

from payments.api.escrow import ConfirmDeliveryView, DisputeView, ResolveDisputeView
from payments.api.orders import OrderDetailView, OrderListCreateView, PaymentStatusView
from payments.api.payments import (
    MonitorBlockchainView,
    PaymentRefundView,
    PaymentRetryView,
    PaymentStatusUpdateView,
    PaymentTransactionCreateView,
)

_ORDER = r"^api/orders/(?P<order_id>[0-9a-fA-F-]{32,36})"


def both(route: str, view, name: str) -> list[URLPattern]:  # type: ignore[no-untyped-def]
    return [path(route, view, name=name), path(f"{route}/", view, name=f"{name}-slash")]


urlpatterns: list[URLPattern | URLResolver] = [
    re_path(
        _ORDER + r"/confirm-delivery/?$", ConfirmDeliveryView.as_view(), name="confirm-delivery"
    ),
    re_path(_ORDER + r"/dispute/?$", DisputeView.as_view(), name="order-dispute"),
    re_path(_ORDER + r"/resolve-dispute/?$", ResolveDisputeView.as_view(), name="resolve-dispute"),
    *both("api/orders", OrderListCreateView.as_view(), "api-orders"),
    *both(
        "api/orders/payment/monitor-blockchain",
        MonitorBlockchainView.as_view(),
        "api-payment-monitor-blockchain",
    ),
    *both(
        "api/orders/payment-transactions/<str:transaction_id>/status",
        PaymentStatusUpdateView.as_view(),
        "api-payment-transaction-status",
    ),
    *both("api/orders/<str:order_id>", OrderDetailView.as_view(), "api-order"),
    *both(
        "api/orders/<str:order_id>/payment-transactions",
        PaymentTransactionCreateView.as_view(),
        "api-payment-transactions",
    ),
    *both(
        "api/orders/<str:order_id>/payment-status",
        PaymentStatusView.as_view(),
        "api-payment-status",
    ),
    *both(
        "api/orders/<str:order_id>/payment/retry", PaymentRetryView.as_view(), "api-payment-retry"
    ),
    *both(
        "api/orders/<str:order_id>/payment/refund",
        PaymentRefundView.as_view(),
        "api-payment-refund",
    ),
]
