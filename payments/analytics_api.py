"""Staff JSON endpoint with the admin analytics page's figures."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .analytics import analytics_period, payment_analytics


class PaymentAnalyticsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[
            OpenApiParameter("start", str, description="YYYY-MM-DD, inclusive"),
            OpenApiParameter("end", str, description="YYYY-MM-DD, inclusive"),
        ],
        tags=["analytics"],
    )
    def get(self, request: Request) -> Response:
        period = analytics_period(
            request.query_params.get("start"), request.query_params.get("end")
        )
        return Response(payment_analytics(period=period))
