"""The one domain error every service raises; config.exceptions turns it into a response."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rejected request: machine-readable ``code``, human ``message``, optional ``details``.

    ``http_status`` is the status an API answers with; services never look at it.
    """

    code = "invalid_request"
    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ValidationFailed(DomainError):
    """Input that can never be right (bad amount, unknown currency, ...): 400."""


class Conflict(DomainError):
    """Input that is wrong for the current state (illegal transition, too much refund): 409."""

    code = "conflict"
    http_status = 409


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class ProviderRejected(ValidationFailed):
    """The provider refused a call made after our write committed (a declined card, a transaction
    paying someone else): 422 with the provider's code. Unlike a 400 the request did start, so an
    Idempotency-Key keeps this answer and a retry with the key replays it instead of writing
    again."""

    code = "provider_rejected"
    http_status = 422


class ProviderUnavailable(DomainError):
    """The provider timed out or failed; the outcome of the call may be unknown: 502."""

    code = "provider_unavailable"
    http_status = 502


class InvalidTransition(Conflict):
    code = "invalid_transition"
