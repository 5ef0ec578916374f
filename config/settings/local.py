"""Local development: `make run`. Embedded defaults (SQLite, no Redis) unless overridden."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="local-development-only-not-secret")
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DUMMY_PROVIDER_ENABLED = True
