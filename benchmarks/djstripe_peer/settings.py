"""Settings of the dj-stripe peer: production-like (DEBUG off, persistent connections as
orderpay's production uses), everything else from the environment the benchmark passes."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import stripe

_db = urlsplit(os.environ["DJSTRIPE_PEER_DATABASE_URL"])

SECRET_KEY = os.environ["DJSTRIPE_PEER_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "benchmarks.djstripe_peer.urls"
WSGI_APPLICATION = "benchmarks.djstripe_peer.wsgi.application"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "djstripe",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": _db.username or "postgres",
        "PASSWORD": _db.password or "",
        "HOST": _db.hostname or "127.0.0.1",
        "PORT": _db.port or 5432,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

STRIPE_TEST_SECRET_KEY = os.environ["DJSTRIPE_PEER_STRIPE_KEY"]
STRIPE_LIVE_MODE = False
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
if os.environ.get("DJSTRIPE_PEER_MODE", "default") == "deferred":
    DJSTRIPE_WEBHOOK_EVENT_CALLBACK = "benchmarks.djstripe_peer.deferred.acknowledge"

# dj-stripe calls Stripe through the SDK's module-level client: point it at localstripe.
stripe.api_base = os.environ["DJSTRIPE_PEER_STRIPE_API_BASE"]
