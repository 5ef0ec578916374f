from django.urls import URLPattern, URLResolver, re_path

from payments.webhooks.views import PaymentWebhookView

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(
        r"^api/orders/payment/webhook/?$", PaymentWebhookView.as_view(), name="payment-webhook"
    ),
]
