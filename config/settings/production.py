"""Production: PostgreSQL and Redis, behind a TLS-terminating proxy."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import (
    DATABASES,
    S3_STORAGE,
    STORAGES,
    env,
    receipts_storage_config,
    webhook_dispatch_mode,
)

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Preloading is the operator's opt-in (a domain on the browsers' list is hard to take off):
# while it is off, Django's reminder about it (W021) is silenced, so `check --deploy` is clean.
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_REFERRER_POLICY = "same-origin"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
# e.g. https://pay.example.com: the origins whose forms and admin POSTs are accepted over TLS.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Probes reach the processes directly over plain HTTP: never redirect them to https.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
DUMMY_PROVIDER_ENABLED = False
# /metrics tells a stranger payment volumes and backlogs: in production it takes a bearer token,
# and the processes refuse to start without one.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
if len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("Set METRICS_TOKEN (16 characters or more): /metrics needs it.")
# Keep database connections between requests (one connect costs more than the webhook's own
# INSERT); a reused connection is checked at the start of each request (CONN_HEALTH_CHECKS).
# A copy: base's dictionary is shared with every settings module that imports it.
DATABASES = {
    **DATABASES,
    "default": {**DATABASES["default"], "CONN_MAX_AGE": env.int("CONN_MAX_AGE", default=60)},
}
# The webhook acknowledgement is one INSERT: the workers' dispatchers enqueue from the inbox.
WEBHOOK_DISPATCH = webhook_dispatch_mode("inbox")
# Receipts live in a bucket every node shares (a web node on another host reads the PDF a
# worker rendered); RECEIPTS_STORAGE_BACKEND=...FileSystemStorage keeps them on one host's disk.
STORAGES = {**STORAGES, "receipts": receipts_storage_config(S3_STORAGE)}
