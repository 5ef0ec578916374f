"""Staff JSON endpoint with the admin analytics page's figures."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from common.api import ApiView, DecimalStringField, error_responses
from common.errors import ValidationFailed
from payments.analytics import analytics_period, payment_analytics
from payments.models import PaymentMethod


class RateField(serializers.CharField):
    """A ratio 0..1 as a decimal string (4 places), null when there is nothing to divide."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(allow_null=True, **kwargs)


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField(help_text="Inclusive.")


class MethodFiguresSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=PaymentMethod.choices)
    attempts = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    unsuccessful = serializers.IntegerField()
    open = serializers.IntegerField()
    success_rate = RateField(help_text="succeeded / (succeeded + unsuccessful).")
    confirmation_seconds_avg = serializers.CharField(allow_null=True)
    confirmation_seconds_p95 = serializers.CharField(allow_null=True)
    refund_rate = RateField(help_text="Share of succeeded payments with a refund.")


class FeeFiguresSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=PaymentMethod.choices)
    currency = serializers.CharField()
    payments = serializers.IntegerField()
    fee_total = DecimalStringField()
    refunded_total = DecimalStringField()


class PaymentAnalyticsSerializer(serializers.Serializer):
    period = PeriodSerializer()
    methods = MethodFiguresSerializer(many=True)
    fees = FeeFiguresSerializer(many=True)


class PaymentAnalyticsView(ApiView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        tags=["analytics"],
        operation_id="payment_analytics",
        summary="Payment figures for a period (staff): success rates, confirmation times, fees",
        parameters=[
            OpenApiParameter(
                "start",
                OpenApiTypes.DATE,
                description="YYYY-MM-DD, inclusive; default: 30 days before `end`. Not after "
                "`end`, and at most 366 days before it.",
            ),
            OpenApiParameter("end", OpenApiTypes.DATE, description="YYYY-MM-DD, inclusive."),
        ],
        responses={
            200: PaymentAnalyticsSerializer,
            **error_responses(400, 403, e400="`invalid_period`."),
        },
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        for name in ("start", "end"):
            if name in params and not params[name]:  # the back office's blank form means
                raise ValidationFailed(  # "default"; through the API a date is a date
                    f"{name} must be a date (YYYY-MM-DD).", code="invalid_period"
                )
        period = analytics_period(params.get("start"), params.get("end"))
        return Response(payment_analytics(period=period))
