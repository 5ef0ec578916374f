"""Create the demo users `make run` prints (idempotent). Local use only."""

import os
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from accounts.services import seller_enroll, user_grant

DEMO_USERS = [
    # username, is_staff, is_superuser, permissions
    ("admin", True, True, []),
    (
        "support",
        True,
        False,
        [
            "payments.refund_payment",
            "payments.review_payment",
            "payments.view_paymenttransaction",
            "payments.view_refund",
            "orders.view_order",
            "orders.view_orderpaymentevent",
        ],
    ),
    ("buyer", False, False, []),
    ("seller", False, False, []),
]


class Command(BaseCommand):
    help = "Create demo users (admin, support, buyer, seller) and print their logins."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        from django.conf import settings

        if not settings.DEBUG:
            raise CommandError("setup_demo is for local development (DEBUG) only.")
        password = os.environ.get("DEMO_PASSWORD") or _kept_password(settings)
        User = get_user_model()
        self.stdout.write(f"Demo logins (password for all: {password})")
        for username, is_staff, is_superuser, perms in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@orderpay.local"}
            )
            user.is_staff, user.is_superuser = is_staff, is_superuser
            if not user.check_password(password):  # a new hash would log everyone out
                user.set_password(password)
            user.save()
            user_grant(user, *perms)
            if username == "seller":
                seller_enroll(user=user)
            token, _ = Token.objects.get_or_create(user=user)
            self.stdout.write(f"  {username:<8} id={user.pk:<3} token={token.key}")


def _kept_password(settings) -> str:  # type: ignore[no-untyped-def]
    """The demo password chosen on the first run, kept beside the local database
    (VAR_DIR/demo-password), so every later `make run` prints and keeps the same one."""
    path = Path(getattr(settings, "VAR_DIR", settings.BASE_DIR / "var")) / "demo-password"
    if path.is_file() and (kept := path.read_text().strip()):
        return kept
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(9)
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password
