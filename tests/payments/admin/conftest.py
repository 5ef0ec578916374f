from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.factories import UserFactory


def grant(user, *codenames: str):  # type: ignore[no-untyped-def]
    for full in codenames:
        app, codename = full.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def support(db):
    user = UserFactory(username="support", is_staff=True)
    return grant(
        user,
        "payments.view_paymenttransaction",
        "payments.refund_payment",
        "payments.review_payment",
        "payments.update_payment_status",
        "receipts.change_paymentreceipt",
        "payments.change_webhookevent",
    )


@pytest.fixture
def clerk(db):
    """Staff who may look but neither refund nor review."""
    user = UserFactory(username="clerk", is_staff=True)
    return grant(user, "payments.view_paymenttransaction")
