"""The client API's routes. Every path answers with and without a trailing slash."""

from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from payments.api import (
    MonitorBlockchainView,
    PaymentRefundView,
    PaymentRetryView,
    PaymentStatusUpdateView,
    PaymentTransactionCreateView,
)

from .api import OrderDetailView, OrderListCreateView, PaymentStatusView


def both(route: str, view, name: str) -> list[URLPattern]:  # type: ignore[no-untyped-def]
    return [path(route, view, name=name), path(f"{route}/", view, name=f"{name}-slash")]


urlpatterns: list[URLPattern | URLResolver] = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
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
