"""Who needs a second factor: staff who can move money or its state (refund, review, set a
payment's status) and superusers, wherever ``STAFF_OTP_REQUIRED`` is on."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def second_factor_required(user: Any) -> bool:
    """True when ``user`` may act only after a one-time code (django-otp) in this session."""
    if not settings.STAFF_OTP_REQUIRED or not getattr(user, "is_authenticated", False):
        return False
    if not user.is_active:
        return False
    return bool(user.is_superuser) or any(
        user.has_perm(perm) for perm in settings.STAFF_OTP_PERMISSIONS
    )


def second_factor_verified(user: Any) -> bool:
    """The session was verified with a one-time code (set by django-otp's middleware)."""
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified()) if callable(is_verified) else False
