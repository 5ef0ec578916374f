"""Request ids, log context and redaction.

``RequestIdMiddleware`` gives every request an id (the client's ``X-Request-ID`` when it is a
sane token, else a new one), binds it for the request's log lines and returns it in the
response header. ``ContextFilter`` copies request/order/payment ids onto every record;
``RedactingFilter`` removes secret values and card numbers from messages, arguments, extra
fields and tracebacks before any formatter sees them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.log import log_response

from common.clients import client_address
from common.logcontext import (
    client_ip_var,
    current,
    log_context,
    order_id_var,
    payment_id_var,
)

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
#: Keys of a view's URL kwargs that name an order or a payment.
_ORDER_KWARGS = ("order_id", "order_pk")
_PAYMENT_KWARGS = ("payment_id", "transaction_id")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        # order/payment ids start empty for each request; process_view binds them from the URL
        order_token, payment_token = order_id_var.set(""), payment_id_var.set("")
        ip_token = client_ip_var.set(client_address(request))
        try:
            with log_context(request_id=request_id):
                response = self.get_response(request)
                if response.status_code >= 400:
                    # Django logs 4xx/5xx after the middleware returns (outside the request's
                    # context); logging it here carries the ids, and Django then skips it.
                    log_response(
                        "%s: %s",
                        response.reason_phrase,
                        request.path,
                        response=response,
                        request=request,
                    )
        finally:
            order_id_var.reset(order_token)
            payment_id_var.reset(payment_token)
            client_ip_var.reset(ip_token)
        response[REQUEST_ID_HEADER] = request_id
        return response

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any):  # type: ignore[no-untyped-def]
        for key in _ORDER_KWARGS:
            if view_kwargs.get(key):
                order_id_var.set(str(view_kwargs[key]))
        for key in _PAYMENT_KWARGS:
            if view_kwargs.get(key):
                payment_id_var.set(str(view_kwargs[key]))
        return None


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``order_id`` and ``payment_id`` to every record (never drops one).
    Ids given in ``extra=`` win over the bound ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not getattr(record, name, ""):
                setattr(record, name, value)
        return True


# --- redaction ------------------------------------------------------------------------------
REDACTED = "[REDACTED]"
_PATTERNS = [
    re.compile(r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{8,}"),  # Stripe secret/restricted keys
    re.compile(r"\bwhsec_[A-Za-z0-9]{8,}"),  # Stripe webhook signing secrets
    re.compile(r"\bpi_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"),  # PaymentIntent client secrets
]
#: A card number stands alone: 13-19 digits (spaces or dashes between groups) starting with
#: 1-9, not inside a word, an id or a decimal (``5.000000000000000000``, ``evt_1234...``).
_CARD = re.compile(r"(?<![\w.,])[1-9](?:[ -]?\d){11,17}\d(?!\w|[.,]\d)")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        return "[CARD]"
    return match.group(0)


#: Keys inside a structured secret setting (CHAINS entries, storage options) whose values are
#: secret: ``operator_key``, ``payout_key``, ``rpc_url``, ``access_key``, ``secret_key``,
#: ``session_token``, ``endpoint_url``, ``password`` ... (not ``tokens``: token addresses).
_SECRET_FIELD = re.compile(r"(^|_)(key|secret|password|passwd|token|url|dsn|credentials?)($|_)")


def _secret_leaves(value: Any, *, whole: bool) -> Any:
    """The secret strings in ``value``: itself when ``whole``; inside dicts and lists (and JSON
    text holding them), the values of secret-looking keys, and the environment variable a
    ``<secret>_env`` key names."""
    if isinstance(value, str):
        if whole:
            yield value
        if value.lstrip()[:1] in ("{", "["):
            try:
                parsed = json.loads(value)
            except ValueError:
                return
            yield from _secret_leaves(parsed, whole=False)
    elif isinstance(value, dict):
        for key, item in value.items():
            key = str(key).lower()
            if key.endswith("_env") and _SECRET_FIELD.search(key[:-4]) and isinstance(item, str):
                yield os.environ.get(item, "")
            else:
                yield from _secret_leaves(item, whole=whole or bool(_SECRET_FIELD.search(key)))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_leaves(item, whole=whole)


def secret_values() -> list[str]:
    """The values (settings and environment) that must never be logged, longest first: each
    named setting or variable whole, and the secret fields inside structured ones (every
    chain's RPC URL and keys in ``CHAINS``, the storage credentials in
    ``RECEIPTS_STORAGE_OPTIONS``)."""
    from django.conf import settings

    names = getattr(settings, "LOG_REDACT_NAMES", ["SECRET_KEY"])
    values: set[str] = set()
    for name in names:
        for value in (getattr(settings, name, None), os.environ.get(name)):
            leaves = _secret_leaves(value, whole=isinstance(value, str))
            values.update(v for v in leaves if len(v) >= 8)
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    for value in secrets if secrets is not None else secret_values():
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return _CARD.sub(_mask_card, text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            secrets = secret_values()
        except Exception:  # settings not configured yet (start-up): patterns only
            secrets = []
        message = record.getMessage()
        cleaned = redact(message, secrets)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text, secrets), None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value, secrets))
        return True
