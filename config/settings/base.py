"""Settings shared by every environment; each value comes from the environment.

The table in README.md ("Configuration") lists every variable read here.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "accounts",
    "orders",
    "payments",
    "receipts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Unset: a SQLite file. SQLite goes through config.db.sqlite3, which keeps decimals exact.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["ENGINE"] = "config.db.sqlite3"
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)

# --- Cache and Celery -----------------------------------------------------------------------
# Unset REDIS_URL: a local-memory cache and an in-process broker, so nothing else must run.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="orderpay"),
        }
    }
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # kombu's filesystem transport: web, worker and beat share a folder, no server needed.
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")

CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", 3600)}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = BASE_DIR / "var" / "broker"
    for _sub in ("queue", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        data_folder_in=str(_broker_dir / "queue"),
        data_folder_out=str(_broker_dir / "queue"),
        processed_folder=str(_broker_dir / "processed"),
        store_processed=False,
    )
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Email ----------------------------------------------------------------------------------
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="orderpay <payments@orderpay.local>")

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "orderpay API",
    "DESCRIPTION": "Orders and their card, crypto and escrow payments.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Payments -------------------------------------------------------------------------------
# Payment providers by method; "dummy" exists only where settings enable it (test, local).
PAYMENT_PROVIDERS = {
    "fiat": env("PAYMENT_PROVIDER_FIAT", default="stripe"),
    "crypto": env("PAYMENT_PROVIDER_CRYPTO", default="chain"),
    "escrow": env("PAYMENT_PROVIDER_ESCROW", default="escrow"),
}
DUMMY_PROVIDER_ENABLED = False
PAYMENT_EXPIRY = timedelta(minutes=env.int("PAYMENT_EXPIRY_MINUTES", default=15))
REVIEW_HIGH_VALUE_THRESHOLD = env("REVIEW_HIGH_VALUE_THRESHOLD", default="10000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env("LOG_FORMAT", default="plain"),
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

PAYMENT_PROVIDER_CLASSES = {
    "dummy": "payments.providers.dummy.DummyProvider",
}
#: Webhook sources, tried in order on POST /api/orders/payment/webhook.
WEBHOOK_SOURCES: list[str] = []

# --- chain (crypto and escrow payments) -----------------------------------------------------
PAYMENT_PROVIDER_CLASSES["chain"] = "payments.providers.chain.provider.ChainProvider"
PAYMENT_PROVIDER_CLASSES["escrow"] = "payments.providers.chain.provider.EscrowProvider"
WEBHOOK_SOURCES.append("payments.chain_webhooks.ChainWebhookSource")
CHAIN_WEBHOOK_SECRET = env("CHAIN_WEBHOOK_SECRET", default="")
CHAIN_WEBHOOK_TOLERANCE_SECONDS = env.int("CHAIN_WEBHOOK_TOLERANCE_SECONDS", default=300)
CHAIN_POLL_SECONDS = env.int("CHAIN_POLL_SECONDS", default=15)
#: where `deploy_contracts` records the addresses on a development chain (31337 only)
CHAIN_DEV_DEPLOYMENT_FILE = env(
    "CHAIN_DEV_DEPLOYMENT_FILE", default=str(BASE_DIR / "var" / "chain-31337.json")
)
CHAINS = [
    {
        "chain_id": env.int("CHAIN_ID", default=31337),
        "rpc_url": env("CHAIN_RPC_URL", default=""),
        "required_confirmations": env.int("REQUIRED_CONFIRMATIONS", default=12),
        "tokens": env("ACCEPTED_TOKENS", default=""),
        "escrow_contract": env("ESCROW_CONTRACT_ADDRESS", default=""),
        "receiving_address": env("CRYPTO_RECEIVING_ADDRESS", default=""),
        "tolerance_base_units": env.int("AMOUNT_TOLERANCE_BASE_UNITS", default=0),
        "lag": env.int("CHAIN_LAG_BLOCKS", default=0),
        "operator_key": env("ESCROW_OPERATOR_KEY", default=""),
        "payout_key": env("PAYOUT_WALLET_KEY", default=""),
    },
    # more chains: [{"chain_id": 137, "rpc_url": "...", "required_confirmations": 128,
    #   "tokens": [...], "operator_key_env": "POLYGON_OPERATOR_KEY", ...}]
    *env.json("CHAINS_JSON", default=[]),
]
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "poll-chains": {"task": "payments.poll_chains", "schedule": float(CHAIN_POLL_SECONDS)},
}
