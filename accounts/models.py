from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """The project's user: buyers, sellers, support and staff alike."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
