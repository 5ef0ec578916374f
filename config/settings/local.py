"""Local development: `make run`. Embedded defaults (SQLite, no Redis) unless overridden.

Precedence: the process environment, then the repository's `.env`, then `VAR_DIR/local.env`
(written by `python -m devtools.peers env` at the start of `make run`: the local peers'
ports, localstripe's test key, anvil's RPC URL and its well-known development accounts).
`ORDERPAY_VAR_DIR` (default `var/`) moves every local file: database, broker folder, media,
the chain deployment file, so that a second system (the walkthrough test) runs beside yours.
"""

import os
from pathlib import Path

import environ

_BASE_DIR = Path(__file__).resolve().parent.parent.parent
_VAR_DIR = Path(os.environ.get("ORDERPAY_VAR_DIR") or _BASE_DIR / "var")
for _env_file in (_BASE_DIR / ".env", _VAR_DIR / "local.env"):
    if _env_file.is_file():
        environ.Env.read_env(_env_file, overwrite=False)

from config.settings.base import *  # noqa: E402, F403
from config.settings.base import (  # noqa: E402
    CELERY_BROKER_TRANSPORT_OPTIONS,
    DATABASES,
    INSTALLED_APPS,
    REDIS_URL,
    env,
    filesystem_broker_options,
)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="local-development-only-not-secret")
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DUMMY_PROVIDER_ENABLED = True
STAFF_OTP_REQUIRED = env.bool("STAFF_OTP_REQUIRED", default=False)  # a password alone
INSTALLED_APPS = [*INSTALLED_APPS, "devtools"]  # demo data, local peers, contract tools

VAR_DIR = _VAR_DIR
if "ORDERPAY_VAR_DIR" in os.environ:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if not env("DATABASE_URL", default=""):
        DATABASES["default"]["NAME"] = str(VAR_DIR / "db.sqlite3")
    if "data_folder_in" in CELERY_BROKER_TRANSPORT_OPTIONS:  # the file-system broker
        CELERY_BROKER_TRANSPORT_OPTIONS.update(filesystem_broker_options(VAR_DIR / "broker"))
    MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
    CHAIN_DEV_DEPLOYMENT_FILE = env(
        "CHAIN_DEV_DEPLOYMENT_FILE", default=str(VAR_DIR / "chain-31337.json")
    )

# web, worker and beat are separate processes: without Redis they share the cache through the
# database (`createcachetable`), so that a worker's cache invalidation (payment status) reaches
# web and the cross-process locks of payments/chain_locks.py (an atomic cache ``add`` off
# PostgreSQL) hold between processes. A per-process local-memory cache would give neither.
if not REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "orderpay_cache",
        }
    }
# SQLite with several processes: take the write lock when a transaction begins (a deferred
# transaction that upgrades later fails at once with "database is locked" instead of waiting),
# and let readers go on beside a writer (WAL).
if DATABASES["default"]["ENGINE"] == "config.db.sqlite3":
    DATABASES["default"]["OPTIONS"].update(
        transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;"
    )
