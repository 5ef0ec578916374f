"""The sellers part of the client API: a user opts in to selling, and reads their profile."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import SellerProfile
from accounts.services import seller_enroll
from common.api import ApiView, error_responses
from common.errors import NotFound


class SellerProfileSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(
        read_only=True, help_text="The id buyers name as `seller_id` in `POST /api/orders`."
    )
    created_at = serializers.DateTimeField(read_only=True)


class SellerMeView(ApiView):
    @extend_schema(
        tags=["sellers"],
        operation_id="sellers_me_retrieve",
        summary="The caller's seller profile",
        responses={200: SellerProfileSerializer, **error_responses(404)},
    )
    def get(self, request: Request) -> Response:
        profile = SellerProfile.objects.filter(user=request.user).first()
        if profile is None:
            raise NotFound("You have not opted in to selling.", code="seller_not_found")
        return Response(SellerProfileSerializer(profile).data)

    @extend_schema(
        tags=["sellers"],
        operation_id="sellers_me_create",
        summary="Opt in to selling (idempotent: 201 the first time, then 200)",
        description="Until a user has opted in, no order can name them as its seller. Staff "
        "accounts cannot sell.",
        request=None,
        responses={
            200: SellerProfileSerializer,
            201: SellerProfileSerializer,
            **error_responses(403, e403="`staff_cannot_sell`."),
        },
    )
    def post(self, request: Request) -> Response:
        profile, created = seller_enroll(user=request.user)
        return Response(
            SellerProfileSerializer(profile).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
