"""POST /api/orders/payment/webhook: verify, store once, acknowledge (processing is a task).

An entry point only: it reads the raw body and headers, calls ``webhook_receive`` and answers.
A rejected request (bad signature, bad payload) raises a DomainError, which the project's API
exception handler turns into the one error format (400); nothing is stored then.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ValidationFailed
from payments.webhooks.inbox import webhook_receive


class PaymentWebhookView(APIView):
    # Providers authenticate by signature, not by session or token (so no CSRF either).
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    throttle_classes: list = []

    # Described in the schema by payments.api.schema.schema_add_webhook (it has no serializer).
    @extend_schema(exclude=True)
    def post(self, request: Request) -> Response:
        try:
            body = request._request.body
        except RequestDataTooBig:  # above DATA_UPLOAD_MAX_MEMORY_SIZE: the inbox's own answer
            raise ValidationFailed("Webhook body too large.", code="payload_too_large") from None
        _event, created = webhook_receive(body, request._request.headers)
        return Response({"received": True, "duplicate": not created})
