"""Test-only routes: a payment action that always refuses and one that logs."""

import logging

from django.conf import settings
from django.urls import include, path
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger("orderpay.test")


class Never(BasePermission):
    def has_permission(self, request, view):  # type: ignore[no-untyped-def]
        return False


class RefundView(APIView):
    permission_classes = [Never]

    def post(self, request, order_id):  # type: ignore[no-untyped-def]
        return Response({})


class LoggingView(APIView):
    permission_classes = []

    def get(self, request, order_id, payment_id):  # type: ignore[no-untyped-def]
        logger.info(
            "charging card %s with key %s and %s",
            "4242 4242 4242 4242",
            settings.SECRET_KEY,
            settings.STRIPE_SECRET_KEY,
        )
        try:
            raise RuntimeError(f"provider said no to {settings.ESCROW_OPERATOR_KEY}")
        except RuntimeError:
            logger.exception("provider call failed")
        return Response({"ok": True})


urlpatterns = [
    path("api/orders/<uuid:order_id>/payment/refund", RefundView.as_view()),
    path("api/orders/<uuid:order_id>/payments/<uuid:payment_id>/log", LoggingView.as_view()),
    path("", include("config.urls")),
]
