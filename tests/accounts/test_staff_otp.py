"""Staff who can move money sign in with a one-time code as well as a password, wherever
STAFF_OTP_REQUIRED is on (production); local and test settings sign in with a password."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token

from accounts.services import user_grant
from tests.factories import OrderFactory, UserFactory

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "the-right-password-1"


def staff_user(username: str, *perms: str, **flags: bool):  # type: ignore[no-untyped-def]
    user = UserFactory(username=username, is_staff=True, **flags)
    user.set_password(PASSWORD)
    user.save()
    user_grant(user, *perms)
    return user


def enrol(username: str) -> bytes:
    """Enrol through the command, as an operator would; the key read back from its URL."""
    out = io.StringIO()
    call_command("otp_enroll", username, stdout=out)
    url = out.getvalue().strip()
    assert url.startswith("otpauth://totp/")
    secret = parse_qs(urlparse(url).query)["secret"][0]
    import base64

    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def code(key: bytes) -> str:
    return f"{TOTP(key).token():06d}"


def sign_in(client, username: str, token: str = ""):  # type: ignore[no-untyped-def]
    data = {"username": username, "password": PASSWORD}
    if token:
        data["otp_token"] = token
    return client.post(LOGIN, data)


def in_admin(client) -> bool:  # type: ignore[no-untyped-def]
    return client.get("/admin/").status_code == 200


@pytest.fixture
def otp_on(settings):  # type: ignore[no-untyped-def]
    settings.STAFF_OTP_REQUIRED = True


@pytest.mark.parametrize(
    ("perm", "flags"),
    [
        ("payments.refund_payment", {}),
        ("payments.review_payment", {}),
        ("payments.update_payment_status", {}),
        ("", {"is_superuser": True}),
    ],
)
def test_a_password_alone_does_not_let_money_movers_in(client, otp_on, perm, flags):
    staff_user("mover", *([perm] if perm else []), **flags)
    enrol("mover")
    r = sign_in(client, "mover")
    assert r.status_code == 200 and b"one-time code" in r.content
    assert not in_admin(client)
    r = sign_in(client, "mover", token="000000")
    assert not in_admin(client)


def test_the_password_and_the_code_let_them_in(client, otp_on):
    staff_user("support", "payments.refund_payment")
    key = enrol("support")
    r = sign_in(client, "support", token=code(key))
    assert r.status_code == 302, r.context["form"].errors
    assert in_admin(client)


def test_a_money_mover_without_a_device_is_told_what_to_do(client, otp_on):
    staff_user("support", "payments.refund_payment")
    r = sign_in(client, "support", token="123456")
    assert b"otp_enroll" in r.content and not in_admin(client)


def test_other_staff_sign_in_with_a_password(client, otp_on):
    staff_user("viewer", "orders.view_order")
    assert sign_in(client, "viewer").status_code == 302
    assert in_admin(client)


def test_without_the_setting_a_password_is_enough(client, settings):
    settings.STAFF_OTP_REQUIRED = False
    staff_user("support", "payments.refund_payment")
    assert sign_in(client, "support").status_code == 302
    assert in_admin(client)


def test_a_permission_granted_after_a_password_sign_in_needs_the_code(client, otp_on):
    user = staff_user("viewer", "orders.view_order")
    order = OrderFactory()
    assert sign_in(client, "viewer").status_code == 302 and in_admin(client)
    user_grant(user, "payments.refund_payment")
    assert not in_admin(client)
    r = client.get(f"/api/orders/{order.id}/payment-status")
    assert r.status_code == 403 and r.json()["error"]["code"] == "otp_required"
    # An API token is its own credential: the same user's token still works.
    token = Token.objects.create(user=user)
    r = client.get(
        f"/api/orders/{order.id}/payment-status", HTTP_AUTHORIZATION=f"Token {token.key}"
    )
    assert r.status_code == 200


def test_enrolling_twice_needs_replace():
    staff_user("support", "payments.refund_payment")
    first = enrol("support")
    with pytest.raises(CommandError):
        call_command("otp_enroll", "support", stdout=io.StringIO())
    call_command("otp_enroll", "support", "--replace", stdout=io.StringIO())
    assert TOTPDevice.objects.filter(user__username="support").count() == 1
    assert TOTPDevice.objects.get().bin_key != first


def test_production_requires_the_code_and_local_and_test_do_not():
    from config.settings import base, local, test

    assert base.STAFF_OTP_REQUIRED is True
    assert local.STAFF_OTP_REQUIRED is False and test.STAFF_OTP_REQUIRED is False


def test_the_sign_in_page_names_the_platform(client, settings):
    settings.PLATFORM_NAME = "Acme Market"
    r = client.get(LOGIN)
    assert b"Acme Market back office" in r.content and b"One-time code" in r.content
