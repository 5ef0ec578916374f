"""Test settings: PostgreSQL when DATABASE_URL is set, SQLite otherwise."""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import INSTALLED_APPS, env

DEBUG = False
SECRET_KEY = "test-only-not-secret"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
DUMMY_PROVIDER_ENABLED = True
STAFF_OTP_REQUIRED = env.bool("STAFF_OTP_REQUIRED", default=False)  # a password alone
INSTALLED_APPS = [*INSTALLED_APPS, "devtools"]  # demo data, local peers, contract tools
PAYMENT_PROVIDERS = {"fiat": "dummy", "crypto": "dummy", "escrow": "dummy"}
MEDIA_ROOT = BASE_DIR / "var" / "test-media"  # noqa: F405
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Throttling is tested with its own low rates; everything else runs far below these.
API_THROTTLE_RATES = dict.fromkeys(API_THROTTLE_RATES, "100000/minute")  # noqa: F405
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": API_THROTTLE_RATES}  # noqa: F405
# On SQLite, a file rather than memory: Django's live server shares an in-memory database's
# one connection between the test and server threads, so a request processed while the test
# reads could interleave their transactions. With a file each thread has its own connection.
if DATABASES["default"]["ENGINE"] == "config.db.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")  # noqa: F405
    }

# pytest-xdist workers share one Redis: each keeps its own cache keys (chain back-off, rate
# limits, payment-status), so parallel runs do not see each other's state.
if os.environ.get("PYTEST_XDIST_WORKER") and "KEY_PREFIX" in CACHES["default"]:  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] += "-" + os.environ["PYTEST_XDIST_WORKER"]  # noqa: F405
