from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The project's user: buyers, sellers, support and staff alike."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class SellerProfile(models.Model):
    """A user who has opted in to selling (``POST /api/sellers/me``). Only such a user can be
    named as an order's seller; payout wallets and accounts hang on this profile."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.PROTECT,
        related_name="seller_profile",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"seller {self.user_id}"
