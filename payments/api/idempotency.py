"""Idempotency-Key on client POSTs: the first response is kept and replayed byte for byte.

- Same user, same key, same request (method, path and body): the first response again, with
  its status, body and content type (and ``Idempotent-Replayed: true``).
- Same key with another request: 422 ``idempotency_key_reused``.
- Same key while the first request still runs: the second waits up to
  ``IDEMPOTENCY_WAIT_SECONDS`` for the first answer, then 409 ``idempotency_key_in_use``.

The key is claimed by inserting its row (unique on user and key) in its own transaction before
the request runs, so of many parallel requests exactly one runs. Answers are kept encrypted
(they may hold a card payment's ``client_secret``) for at least ``IDEMPOTENCY_KEY_TTL_HOURS``;
the beat job ``payments.cleanup_idempotency_keys`` (``services.expiry``) removes older ones.
A 400, 413 or 415 answer is not kept (the request never started; the client may correct it and
use the key again), nor is a crash: the key is released.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import wraps
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request

from common.api import check_body_size
from common.db import write_on_new_connection
from common.errors import Conflict, DomainError, ValidationFailed
from payments.models import IdempotencyKey

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
#: Answers that are not kept: the request was refused before it started.
NOT_KEPT = frozenset({400, 413, 415})
REPLAY_HEADER = "Idempotent-Replayed"

#: What any JSON POST behind ``idempotent`` may answer besides its own errors (for
#: ``orders.api.error_responses``): 400 (bad key or body), 409 ``idempotency_key_in_use``, 413,
#: 415 and 422 ``idempotency_key_reused``.
IDEMPOTENT_POST_ERRORS = (400, 409, 413, 415, 422)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name=HEADER,
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    pattern=r"^[!-~]{1,255}$",
    description=(
        "Optional, 1-255 printable ASCII characters, unique per request you mean. The same key "
        "with the same body replays the first response (status and body, byte for byte, with "
        "`Idempotent-Replayed: true`); with another body: 422 `idempotency_key_reused`; while "
        "the first request still runs: 409 `idempotency_key_in_use`. Keys are kept >= 24 h."
    ),
)


class IdempotencyKeyInvalid(ValidationFailed):
    code = "invalid_idempotency_key"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    http_status = 422


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str


# --- storage -------------------------------------------------------------------------------
def _fernet() -> MultiFernet:
    import base64

    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    keys = [
        Fernet(
            base64.urlsafe_b64encode(
                salted_hmac(
                    "payments.idempotency", "response", secret=s, algorithm="sha256"
                ).digest()
            )
        )
        for s in secrets
    ]
    return MultiFernet(keys)


def _canonical_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__decimal__": str(value)}
    raise TypeError(type(value).__name__)


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the method, the path (trailing slash ignored) and the body; a JSON body is
    compared by its content (key order and spacing do not matter)."""
    try:
        canonical = json.dumps(
            json.loads(body, parse_float=Decimal),
            sort_keys=True,
            separators=(",", ":"),
            default=_canonical_default,
        ).encode()
    except (ValueError, TypeError, RecursionError):
        canonical = b"raw:" + body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.rstrip("/").encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _stored(row: IdempotencyKey) -> StoredResponse:
    try:
        body = _fernet().decrypt(bytes(row.response_body or b""))
    except InvalidToken:
        raise IdempotencyKeyInUse(
            "The first answer for this key can no longer be read; use a new key.",
            details={"key": row.key},
        ) from None
    return StoredResponse(
        status=int(row.response_status or 200),
        body=body,
        content_type=str(row.response_headers.get("Content-Type", "application/json")),
    )


def idempotency_claim(
    *, user: Any, key: str, method: str, path: str, request_hash: str
) -> IdempotencyKey | StoredResponse:
    """Claim ``key`` for this request (the row to complete or release afterwards), or return the
    kept first answer. Raises ``IdempotencyKeyReused`` or, after waiting, ``IdempotencyKeyInUse``.
    """
    deadline = time.monotonic() + float(settings.IDEMPOTENCY_WAIT_SECONDS)
    while True:
        now = timezone.now()
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    user=user,
                    key=key,
                    method=method.upper()[:8],
                    path=path[:500],
                    request_hash=request_hash,
                    created_at=now,
                )
        except IntegrityError:
            pass
        row = IdempotencyKey.objects.filter(user=user, key=key).first()
        if row is None:
            continue  # released in between: claim again
        if row.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for another request.",
                details={"key": key},
            )
        if row.completed_at is not None:
            return _stored(row)
        stale = now - timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS)
        if row.created_at < stale:
            # The request holding the key died: take it over (only one taker wins).
            taken = IdempotencyKey.objects.filter(
                pk=row.pk, completed_at__isnull=True, created_at=row.created_at
            ).update(created_at=now)
            if taken:
                row.created_at = now
                return row
            continue
        if time.monotonic() >= deadline:
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is still being processed.",
                details={"key": key},
            )
        time.sleep(0.05)


def idempotency_complete(row: IdempotencyKey, response: StoredResponse) -> None:
    """Keep the answer; on a new connection if the database dropped the old one after the
    request's own commit (a lost answer would hold the key for IDEMPOTENCY_LOCK_SECONDS, then
    let a retry run the request again)."""
    body = _fernet().encrypt(response.body)
    write_on_new_connection(
        lambda: IdempotencyKey.objects.filter(pk=row.pk).update(
            response_status=response.status,
            response_body=body,
            response_headers={"Content-Type": response.content_type},
            completed_at=timezone.now(),
        ),
        what=f"idempotency key {row.pk}",
    )


def idempotency_release(row: IdempotencyKey) -> None:
    IdempotencyKey.objects.filter(pk=row.pk, completed_at__isnull=True).delete()


# --- the view side -------------------------------------------------------------------------
def idempotent(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an APIView's ``post``: runs after authentication, permissions and throttling."""

    @wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
        check_body_size(request)
        key = request.META.get("HTTP_IDEMPOTENCY_KEY")
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not KEY_RE.match(key):
            raise IdempotencyKeyInvalid(
                "Idempotency-Key must be 1 to 255 printable ASCII characters."
            )
        fingerprint = request_fingerprint(request.method, request.path, request.body)
        claimed = idempotency_claim(
            user=request.user,
            key=key,
            method=request.method,
            path=request.path,
            request_hash=fingerprint,
        )
        if isinstance(claimed, StoredResponse):
            replay = HttpResponse(
                claimed.body, status=claimed.status, content_type=claimed.content_type
            )
            replay[REPLAY_HEADER] = "true"
            return replay
        try:
            try:
                response = handler(view, request, *args, **kwargs)
            except Exception as exc:
                response = view.handle_exception(exc)
            response = view.finalize_response(request, response, *args, **kwargs)
            response.render()
        except BaseException:
            idempotency_release(claimed)
            raise
        if response.status_code in NOT_KEPT or response.status_code == 500:
            idempotency_release(claimed)
        else:
            idempotency_complete(
                claimed,
                StoredResponse(
                    status=response.status_code,
                    body=bytes(response.content),
                    content_type=response.get("Content-Type", "application/json"),
                ),
            )
        return response

    return wrapper
