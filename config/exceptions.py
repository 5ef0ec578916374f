"""One error format for every 4xx and 5xx the API gives:
``{"error": {"code": "...", "message": "...", "details": {...}}}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from common.errors import DomainError
from ops.models import SecurityEvent
from ops.security import is_payment_path, security_event_record

_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid_request",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("request_too_large", "The request body is too large."), status=413
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if response.status_code == status.HTTP_403_FORBIDDEN:
        _audit_denial(exc, context)
    if isinstance(exc, exceptions.ValidationError):
        full = exc.get_full_details()
        details = full if isinstance(full, dict) else {"non_field_errors": full}
        body = error_body("invalid_request", "The request is not valid.", details)
    elif isinstance(exc, exceptions.Throttled):
        body = error_body(
            "throttled", str(exc.detail), {"retry_after": exc.wait and int(exc.wait + 0.999)}
        )
    else:
        detail = getattr(exc, "detail", "")
        given = getattr(detail, "code", None)
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
        if given and given != getattr(exc, "default_code", None):
            code = str(given)  # a code the view chose, e.g. PermissionDenied(code="not_buyer")
        body = error_body(code or str(given or "error"), str(detail))
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = "Token"
    response.data = body
    return response


def _audit_denial(exc: Exception, context: dict[str, Any]) -> None:
    """A permission denial on a payment or refund action is a security audit entry."""
    request = context.get("request")
    if request is None or not is_payment_path(request.path):
        return
    view = context.get("view")
    security_event_record(
        kind=SecurityEvent.Kind.PERMISSION_DENIED,
        request=request,
        details={
            "view": type(view).__name__ if view is not None else "",
            "code": str(getattr(getattr(exc, "detail", ""), "code", "permission_denied")),
        },
    )


def _wants_api_error(request: Any) -> bool:
    return request.path.startswith("/api/")


def not_found_view(request: Any, exception: Exception | None = None) -> Any:
    """404 for a URL no route matches: the one error format under /api/, HTML elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if _wants_api_error(request):
        return JsonResponse(error_body("not_found", "No such resource."), status=404)
    return page_not_found(request, exception)


def server_error_view(request: Any) -> Any:
    """500: the one error format under /api/ (no details leak), HTML elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import server_error

    if _wants_api_error(request):
        return JsonResponse(error_body("server_error", "Something went wrong."), status=500)
    return server_error(request)
