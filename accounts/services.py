"""Writes on accounts: a user opting in to selling."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from accounts.models import SellerProfile
from common.errors import DomainError, ValidationFailed

log = logging.getLogger(__name__)


class StaffCannotSell(DomainError):
    code = "staff_cannot_sell"
    http_status = 403


def seller_enroll(*, user: Any) -> tuple[SellerProfile, bool]:
    """The user's seller profile, created on the first call (later calls return it unchanged):
    ``(profile, created)``. Staff and superusers cannot sell (403 ``staff_cannot_sell``)."""
    if user.is_staff or user.is_superuser:
        raise StaffCannotSell("Staff accounts cannot be sellers.")
    try:
        with transaction.atomic():
            profile, created = SellerProfile.objects.get_or_create(user=user)
    except IntegrityError:  # a concurrent first call created it
        profile, created = SellerProfile.objects.get(user=user), False
    if created:
        log.info("seller enrolled", extra={"user_id": user.pk})
    return profile, created


def user_grant(user: Any, *perms: str) -> None:
    """Give ``user`` the permissions named ``app_label.codename``."""
    from django.contrib.auth.models import Permission

    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


def seller_for_order(seller_id: Any) -> Any:
    """The user named as an order's seller, if they can sell: active, opted in, not staff.
    Any other id (unknown, not a seller, staff, inactive) gets the same 400 ``unknown_seller``,
    so the answer tells nothing about which user ids exist."""
    seller = None
    if (isinstance(seller_id, int) and not isinstance(seller_id, bool)) or (
        isinstance(seller_id, str) and seller_id.isdigit() and len(seller_id) < 19
    ):
        seller = (
            get_user_model()
            .objects.filter(
                pk=int(seller_id),
                is_active=True,
                is_staff=False,
                is_superuser=False,
                seller_profile__isnull=False,
            )
            .first()
        )
    if seller is None:
        raise ValidationFailed(
            "Unknown seller.", code="unknown_seller", details={"seller_id": str(seller_id)[:32]}
        )
    return seller
