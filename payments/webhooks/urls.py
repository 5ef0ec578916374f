from django.urls import URLPattern, URLResolver

from common.urls import slash_optional
from payments.webhooks.views import PaymentWebhookView

urlpatterns: list[URLPattern | URLResolver] = [
    *slash_optional("api/orders/payment/webhook", PaymentWebhookView.as_view(), "payment-webhook"),
]
