"""Receipt endpoints: the PDF for the order's buyer, seller and staff; public verification."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from common.api import ApiView, StrictSerializer, error_responses
from common.errors import NotFound, ValidationFailed
from common.money import format_amount
from payments.api.throttling import ReceiptVerifyThrottle
from receipts.selectors import receipt_get_for_user
from receipts.services import receipt_render_later, receipt_verify


class ReceiptPdfView(ApiView):
    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            **error_responses(
                404,
                e404="`receipt_not_found` (also for others' receipts); `receipt_not_ready`: the "
                "PDF is not rendered yet or is missing from storage, and is being rendered "
                "(ask again shortly).",
            ),
        },
        tags=["receipts"],
    )
    def get(self, request: Request, receipt_id: str) -> FileResponse:
        receipt = receipt_get_for_user(request.user, receipt_id)
        try:
            if not receipt.pdf:
                raise FileNotFoundError(receipt.number)
            pdf = receipt.pdf.open("rb")
        except FileNotFoundError:
            receipt_render_later(receipt=receipt)  # not rendered yet, or lost from storage
            raise NotFound(
                "The receipt's PDF is not ready yet; it is being rendered.",
                code="receipt_not_ready",
            ) from None
        response = FileResponse(
            pdf,
            content_type="application/pdf",
            as_attachment=True,
            filename=f"{receipt.number}.pdf",
        )
        response["X-Receipt-SHA256"] = receipt.sha256
        response["Cache-Control"] = "private, no-store"
        return response


RECEIPT_NUMBER_PATTERN = r"^[A-Za-z]{1,8}-[0-9]{4}-[0-9]{6,12}$"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"


class VerifyInputSerializer(StrictSerializer):
    number = serializers.RegexField(
        RECEIPT_NUMBER_PATTERN, max_length=32, help_text="e.g. `RCPT-2026-000042`."
    )
    sha256 = serializers.RegexField(SHA256_PATTERN, help_text="The PDF's SHA-256, in hex.")


class VerifyOutputSerializer(serializers.Serializer):
    number = serializers.CharField()
    genuine = serializers.BooleanField()
    kind = serializers.CharField(required=False)
    issued_at = serializers.DateTimeField(required=False)
    amount = serializers.CharField(required=False)
    currency = serializers.CharField(required=False)


class ReceiptVerifyView(ApiView):
    """Whether a receipt number and the SHA-256 of a PDF belong together (anyone may ask)."""

    permission_classes = [AllowAny]
    throttle_classes = [ReceiptVerifyThrottle]

    def _answer(self, data: object) -> Response:
        form = VerifyInputSerializer(data=data)
        if not form.is_valid():
            given = isinstance(data, dict) and all(
                isinstance(data.get(k), str) for k in ("number", "sha256")
            )
            if given:  # both there but malformed: the service names which, with its own code
                receipt_verify(number=data["number"], sha256=data["sha256"])
            raise ValidationFailed(
                "number and sha256 are required.", code="invalid_request", details=form.errors
            )
        number, digest = form.validated_data["number"], form.validated_data["sha256"]
        receipt = receipt_verify(number=number, sha256=digest)
        body: dict[str, object] = {"number": number.strip().upper(), "genuine": receipt is not None}
        if receipt is not None:
            body.update(
                kind=receipt.kind,
                issued_at=receipt.issued_at,
                amount=format_amount(receipt.amount, receipt.currency),
                currency=receipt.currency,
            )
        return Response(VerifyOutputSerializer(body).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("number", str, required=True, pattern=RECEIPT_NUMBER_PATTERN),
            OpenApiParameter("sha256", str, required=True, pattern=SHA256_PATTERN),
        ],
        responses={200: VerifyOutputSerializer, **error_responses(400, 429)},
        tags=["receipts"],
    )
    def get(self, request: Request) -> Response:
        # Query strings may carry other parameters (caches, trackers): only these two count.
        params = request.query_params
        return self._answer({k: params[k] for k in ("number", "sha256") if k in params})

    @extend_schema(
        request=VerifyInputSerializer,
        responses={200: VerifyOutputSerializer, **error_responses(400, 415, 429)},
        tags=["receipts"],
    )
    def post(self, request: Request) -> Response:
        return self._answer(request.data)
