from django.urls import URLPattern, URLResolver, re_path

from .webhook_views import PaymentWebhookView

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(
        r"^api/orders/payment/webhook/?$", PaymentWebhookView.as_view(), name="payment-webhook"
    ),
]
