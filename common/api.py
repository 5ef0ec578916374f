"""The API's shared building blocks: the strict-serializer base every input uses, the money,
amount and currency fields, the one error format in the schema, the body-size check, and the
base view."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import QueryDict
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from common.errors import ValidationFailed
from common.money import CURRENCIES, PLAIN_DECIMAL, format_amount
from common.staffauth import second_factor_required, second_factor_verified

MAX_DB_INT = 2**63 - 1


DECIMAL_SCHEMA = {
    "type": "string",
    "format": "decimal",
    "pattern": r"^[0-9]+(\.[0-9]+)?$",
    "example": "100.00",
}


#: Fields whose JSON value is a string (DRF would also take 5 for "5", or false for a UUID).
TEXT_FIELDS = (serializers.CharField, serializers.UUIDField, serializers.ChoiceField)


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not declare (400 ``unknown_field``), so
    no client can slip ``status``, ``fee_amount``, totals or another user's ids into a write."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):  # also for a nested serializer, which has no initial_data
            unknown = sorted(set(data) - set(self.fields))
            if not unknown and self.json_types and not isinstance(data, QueryDict):
                self._check_json_types(data)
            if unknown:
                raise serializers.ValidationError(
                    {
                        str(name)[:64]: [
                            serializers.ErrorDetail(
                                "This field is not accepted here.", code="unknown_field"
                            )
                        ]
                        for name in unknown[:20]
                    }
                )
        return super().to_internal_value(data)

    #: False for a serializer of query parameters, whose values are all text.
    json_types = True

    def _check_json_types(self, data: dict[str, Any]) -> None:
        """A JSON body's strings are strings and its integers integers, as the schema says:
        DRF would read 5 as "5" for a text field and "5" or 5.0 as 5 for an integer one."""
        errors = {}
        for name, field in self.fields.items():
            value = data.get(name)
            if value is None or field.read_only:
                continue
            if isinstance(field, TEXT_FIELDS) and not isinstance(value, str):
                errors[name] = [serializers.ErrorDetail("Must be a string.", code="invalid")]
            elif isinstance(field, serializers.IntegerField) and (
                not isinstance(value, int) or isinstance(value, bool)
            ):
                errors[name] = [serializers.ErrorDetail("Must be an integer.", code="invalid")]
        if errors:
            raise serializers.ValidationError(errors)


#: A decimal string above zero: digits with a non-zero one, and an optional fraction.
POSITIVE_DECIMAL_PATTERN = r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$"


@extend_schema_field(
    {
        "oneOf": [
            {**DECIMAL_SCHEMA, "pattern": POSITIVE_DECIMAL_PATTERN, "maxLength": 64},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        ],
        "description": "A decimal string (preferred) or an exact JSON number; never a float "
        "that has lost precision. Must be > 0 with at most the currency's decimals.",
    }
)
class AmountInputField(serializers.Field):
    """An amount as given: a decimal string or an exact JSON number. Its value is checked by the
    services against the currency (``invalid_amount``)."""

    default_error_messages = {"invalid": 'An amount is a decimal string, e.g. "12.50".'}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, (str, int, Decimal)):
            raise serializers.ValidationError(self.error_messages["invalid"], code="invalid_amount")
        if isinstance(data, str) and len(data) > 64:
            raise serializers.ValidationError("Amount is too long.", code="invalid_amount")
        if isinstance(data, str) and not PLAIN_DECIMAL.fullmatch(data):
            # "" is not "the default amount": a client that means the default leaves it out
            raise ValidationFailed(
                'An amount is a decimal string of ASCII digits, e.g. "12.50".',
                code="invalid_amount",
                details={"amount": data[:64]},
            )
        return data

    def to_representation(self, value: Any) -> Any:
        return str(value)


@extend_schema_field(DECIMAL_SCHEMA)
class MoneyField(serializers.Field):
    """An amount of the object's currency as a plain decimal string at the currency's exponent."""

    def __init__(self, attribute: str | None = None, **kwargs: Any) -> None:
        self.attribute = attribute
        kwargs["source"] = "*"
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def bind(self, field_name: str, parent: Any) -> None:
        super().bind(field_name, parent)
        self.attribute = self.attribute or field_name

    def to_representation(self, obj: Any) -> str:
        return format_amount(getattr(obj, str(self.attribute)), obj.currency)


@extend_schema_field(DECIMAL_SCHEMA)
class DecimalStringField(serializers.CharField):
    """An amount already formatted as a decimal string (e.g. by ``format_amount``)."""


class CurrencyInputField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=sorted(CURRENCIES), **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str) and data.upper() in CURRENCIES:
            return data.upper()
        raise serializers.ValidationError(
            f"Unknown currency; supported: {', '.join(sorted(CURRENCIES))}.",
            code="unknown_currency",
        )


# --- the error format and the base view ------------------------------------------------------
_ERROR_TEXT = {
    400: "Invalid request: `malformed_request`, `invalid_request` (field errors in details), "
    "`invalid_amount`, `unknown_currency`, `unknown_method`, ...",
    401: "`not_authenticated` or `authentication_failed`.",
    403: "`permission_denied`: a party to the order, but not allowed this action.",
    404: "`not_found`, `order_not_found` or `payment_not_found` (also for others' objects).",
    405: "`method_not_allowed`.",
    409: "Conflict with the current state (see the endpoint).",
    413: "`request_too_large`.",
    415: "`unsupported_media_type`.",
    422: "`idempotency_key_reused`.",
    429: "`throttled`, with a Retry-After header.",
    502: "`provider_unavailable`: the provider did not answer; the outcome is being reconciled.",
}


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. `invalid_amount`.")
    message = serializers.CharField(help_text="For humans; may change.")
    details = serializers.DictField(
        help_text="Field errors as {field: [{message, code}]}, or facts about the error."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_responses(*codes: int, **texts: str) -> dict[int, OpenApiResponse]:
    """OpenAPI responses in the one error format for the given statuses (401 always)."""
    out = {}
    for code in sorted({401, *codes}):
        out[code] = OpenApiResponse(
            ErrorSerializer, description=texts.get(f"e{code}", _ERROR_TEXT[code])
        )
    return out


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def check_body_size(request: Request) -> None:
    """413 ``request_too_large`` for a body above ``API_MAX_BODY_BYTES`` (read from the
    Content-Length before anything reads the body)."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.API_MAX_BODY_BYTES:
        raise RequestTooLarge(
            f"The request body is larger than {settings.API_MAX_BODY_BYTES} bytes."
        )


class ApiView(APIView):
    """Base of the client API's views: the body size limit on every write, and no session of a
    user who needs a second factor (``STAFF_OTP_REQUIRED``) before it was verified. An API
    token is its own credential, issued by an administrator in the back office."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if (
            isinstance(request.successful_authenticator, SessionAuthentication)
            and second_factor_required(request.user)
            and not second_factor_verified(request.user)
        ):
            raise exceptions.PermissionDenied(
                "This account needs a one-time code: sign in to the back office with it, or "
                "use an API token.",
                code="otp_required",
            )
        if request.method in ("POST", "PUT", "PATCH"):
            check_body_size(request)
