"""Settings shared by every environment; each value comes from the environment.

docs/configuration.md lists every variable read here (tests/test_docs_configuration.py checks).
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "accounts.apps.StaffAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
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
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last: turns a locked-out login attempt into the lockout answer (django-axes)
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
# Password logins (the back office) go through django-axes first: after AXES_FAILURE_LIMIT
# failures for one username, or from one client address, logins are refused for
# AXES_COOLOFF_MINUTES, even with the right password. API tokens are not passwords: unaffected.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# A second factor (django-otp TOTP) for staff who refund, review or set payment statuses, and
# superusers: on by default; local and test settings turn it off so the demo and the browser
# tests sign in with a password. Enrol a device with `manage.py otp_enroll <username>`.
STAFF_OTP_REQUIRED = env.bool("STAFF_OTP_REQUIRED", default=True)
STAFF_OTP_PERMISSIONS = [
    "payments.refund_payment",
    "payments.review_payment",
    "payments.update_payment_status",
]
OTP_TOTP_ISSUER = env("PLATFORM_NAME", default="orderpay")
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
#: Proxies in front of the web processes whose X-Forwarded-For entries are trusted for the
#: client address (0: none, REMOTE_ADDR is the client; behind one load balancer: 1). Used by
#: the API's rate limits and by the login lockout alike.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
AXES_IPWARE_PROXY_COUNT = NUM_PROXIES or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if NUM_PROXIES else ("REMOTE_ADDR",)
)
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
# A task a dead worker held goes back to the queue after the visibility timeout: minutes, not
# an hour, yet above the hard time limit so a healthy long task is never handed out twice.
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", 420)
}
# Deployments that share a Redis database keep apart by a prefix on every broker key (kombu's
# global_keyprefix); the cache has CACHE_KEY_PREFIX.
BROKER_KEY_PREFIX = env("BROKER_KEY_PREFIX", default="")
#: The broker queues /metrics reports the depth of.
OPS_WATCHED_QUEUES = env.list("OPS_WATCHED_QUEUES", default=["celery"])
if BROKER_KEY_PREFIX:
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = BROKER_KEY_PREFIX


def filesystem_broker_options(broker_dir: Path) -> dict[str, Any]:
    """kombu's filesystem transport, every folder under ``broker_dir`` (its control folder
    too, which kombu otherwise writes relative to the working directory)."""
    for sub in ("queue", "processed", "control"):
        (broker_dir / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(broker_dir / "queue"),
        "data_folder_out": str(broker_dir / "queue"),
        "processed_folder": str(broker_dir / "processed"),
        "control_folder": str(broker_dir / "control"),
        "store_processed": False,
    }


# kombu's Redis transport looks for messages past the visibility timeout every interval x
# throttle seconds (10 x 10 by default: a dead worker's task waited up to 100 s more); the
# throttle is 1, so CELERY_UNACKED_RESTORE_INTERVAL alone sets it (one small Redis query).
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        unacked_restore_interval=env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=10),
        unacked_restore_throttle=1,
    )
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS.update(filesystem_broker_options(BASE_DIR / "var" / "broker"))
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        "CELERY_VISIBILITY_TIMEOUT must be above CELERY_TASK_TIME_LIMIT: a task still running "
        "would be handed to a second worker."
    )
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
# django-celery-beat's database scheduler behind a lease: one beat sends jobs, a second waits.
CELERY_BEAT_SCHEDULER = "ops.beat:SingleBeatScheduler"
BEAT_LEASE_SECONDS = env.int("BEAT_LEASE_SECONDS", default=30)
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
# Payments at or above these amounts (per currency) are flagged for staff review.
REVIEW_HIGH_VALUE_THRESHOLDS = env.dict(
    "REVIEW_HIGH_VALUE_THRESHOLDS",
    default={
        "USD": "10000",
        "EUR": "10000",
        "GBP": "10000",
        "CHF": "10000",
        "CAD": "10000",
        "AUD": "15000",
        "JPY": "1500000",
        "KRW": "15000000",
        "KWD": "3000",
        "BHD": "3500",
        "ETH": "5",
        "USDC": "10000",
        "USDT": "10000",
        "DAI": "10000",
    },
)

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
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO").upper()},
}

PAYMENT_PROVIDER_CLASSES = {
    "dummy": "payments.providers.dummy.DummyProvider",
}
#: Webhook sources, tried in order on POST /api/orders/payment/webhook.
WEBHOOK_SOURCES: list[str] = []

# --- card payments (Stripe) -----------------------------------------------------------------
# Keys come from the environment only and are never logged. STRIPE_API_BASE unset: Stripe's
# own API; set (e.g. http://127.0.0.1:8420): a Stripe-compatible server such as localstripe.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
STRIPE_TIMEOUT = env.float("STRIPE_TIMEOUT", default=10.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)
STRIPE_WEBHOOK_FUTURE_SKEW = env.int("STRIPE_WEBHOOK_FUTURE_SKEW", default=30)
STRIPE_RECONCILE_GRACE_SECONDS = env.int("STRIPE_RECONCILE_GRACE_SECONDS", default=60)
STRIPE_RECONCILE_LOOKBACK_DAYS = env.int("STRIPE_RECONCILE_LOOKBACK_DAYS", default=3)
PAYMENT_PROVIDER_CLASSES["stripe"] = "payments.providers.stripe.provider.StripeProvider"
WEBHOOK_SOURCES.append("payments.webhooks.stripe.StripeWebhookSource")

# --- Client API -----------------------------------------------------------------------------
#: Largest request body Django reads at all (webhooks need up to 512 KiB).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
#: Largest body a client API request (POST, PUT) may carry: 413 ``request_too_large`` above.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=20)
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=100)
#: Rates of the throttled scopes (DRF syntax: N/second|minute|hour|day), per user.
API_THROTTLE_RATES = {
    "payments": env("THROTTLE_RATE_PAYMENTS", default="30/minute"),
    "payment_retry": env("THROTTLE_RATE_PAYMENT_RETRY", default="10/minute"),
    "payment_refund": env("THROTTLE_RATE_PAYMENT_REFUND", default="10/minute"),
    "receipt_verify": env("THROTTLE_RATE_RECEIPT_VERIFY", default="60/minute"),
}
#: The largest amount one order may have, per currency (orders above it get 400
#: ``amount_too_large``). ``MAX_AMOUNTS`` (JSON, e.g. {"USD": "50000"}) overrides entries.
MAX_AMOUNTS = {
    **dict.fromkeys(("USD", "EUR", "GBP", "CHF", "CAD", "AUD", "USDC", "USDT"), "1000000"),
    "DAI": "1000000",
    "JPY": "150000000",
    "KRW": "1500000000",
    "KWD": "300000",
    "BHD": "350000",
    "ETH": "500",
    **env.json("MAX_AMOUNTS", default={}),
}
#: Idempotency keys are kept at least this long (hours) before the cleanup task removes them.
IDEMPOTENCY_KEY_TTL_HOURS = max(24, env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24))
#: A request that finds its key in flight waits this long for the first answer, then is 409.
IDEMPOTENCY_WAIT_SECONDS = env.float("IDEMPOTENCY_WAIT_SECONDS", default=10.0)
#: An in-flight key older than this (its request died) may be taken over by a new request.
IDEMPOTENCY_LOCK_SECONDS = env.int("IDEMPOTENCY_LOCK_SECONDS", default=300)
#: How long a payment-status answer stays cached (it is invalidated on every change anyway).
PAYMENT_STATUS_CACHE_SECONDS = env.int("PAYMENT_STATUS_CACHE_SECONDS", default=300)
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = ["config.parsers.ExactJSONParser"]
REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"] = "orders.api.OrderPagination"
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = API_THROTTLE_RATES
REST_FRAMEWORK["NUM_PROXIES"] = NUM_PROXIES
REST_FRAMEWORK["NON_FIELD_ERRORS_KEY"] = "non_field_errors"
INSTALLED_APPS.append("drf_spectacular_sidecar")
SPECTACULAR_SETTINGS.update(
    {
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
        "PREPROCESSING_HOOKS": ["payments.api.schema.schema_drop_slash_variants"],
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "payments.api.schema.schema_add_webhook",
            "payments.api.schema.schema_close_request_bodies",
            "payments.api.schema.schema_add_links",
        ],
        "ENUM_NAME_OVERRIDES": {
            "PaymentStatusEnum": "payments.models.PaymentStatus",
            "OrderStatusEnum": "orders.models.OrderStatus",
            "PaymentMethodEnum": "payments.models.PaymentMethod",
        },
    }
)
# --- Operations: jobs, retries, health, metrics, alerts, security audit, logs ----------------
INSTALLED_APPS.append("ops")
#: Security events older than this are deleted by the daily prune job.
SECURITY_EVENT_RETENTION_DAYS = env.int("SECURITY_EVENT_RETENTION_DAYS", default=90)
#: collectors of other apps that /metrics serves beside its own
METRICS_COLLECTORS = ["receipts.metrics.ReceiptBacklogCollector"]
#: what payment-status lists as an order's receipts: (order_id=) -> [summary dict]
PAYMENT_STATUS_RECEIPTS_LOADER = "receipts.selectors.receipt_summaries"
# First, so that every log line of a request (the other middleware's too) carries its id.
MIDDLEWARE.insert(0, "ops.logging.RequestIdMiddleware")
# Celery keeps Django's logging (request/task id filter, redaction, JSON) in the worker.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False

#: Automatic retries of transient failures: attempt n waits RETRY_BASE_DELAY * 2**(n-1), at
#: most RETRY_MAX_DELAY, with jitter; after RETRY_MAX_ATTEMPTS the failure is final.
RETRY_MAX_ATTEMPTS = env.int("RETRY_MAX_ATTEMPTS", default=5)
RETRY_BASE_DELAY = timedelta(seconds=env.int("RETRY_BASE_DELAY_SECONDS", default=30))
RETRY_MAX_DELAY = timedelta(seconds=env.int("RETRY_MAX_DELAY_SECONDS", default=900))
#: Webhook events still `received` this long after arrival are enqueued again by the sweeper.
WEBHOOK_SWEEP_AFTER = timedelta(minutes=env.int("WEBHOOK_SWEEP_AFTER_MINUTES", default=5))
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=10)
#: How a stored webhook event reaches a worker. "request": the request enqueues its task to the
#: broker when the INSERT commits. "inbox": the request only INSERTs (no broker round trip in
#: the acknowledgement); every worker runs a dispatcher that takes new inbox rows every
#: WEBHOOK_DISPATCH_POLL_SECONDS and enqueues them. Production uses "inbox".
WEBHOOK_DISPATCH_MODES = ("request", "inbox")


def webhook_dispatch_mode(default: str) -> str:
    mode = env.str("WEBHOOK_DISPATCH", default=default)
    if mode not in WEBHOOK_DISPATCH_MODES:
        raise ImproperlyConfigured(f"WEBHOOK_DISPATCH must be one of {WEBHOOK_DISPATCH_MODES}.")
    return mode


WEBHOOK_DISPATCH = webhook_dispatch_mode("request")
WEBHOOK_DISPATCH_POLL_SECONDS = env.float("WEBHOOK_DISPATCH_POLL_SECONDS", default=0.5)

#: Readiness: seconds each dependency check may take.
READINESS_TIMEOUT = env.float("READINESS_TIMEOUT", default=2.0)
#: Optional bearer token for /metrics (unset: open; keep /metrics on the internal network).
METRICS_TOKEN = env("METRICS_TOKEN", default="")

OPS_ALERT_EMAILS = env.list("OPS_ALERT_EMAILS", default=[])
ALERT_PAYMENT_FAILURE_WINDOW = timedelta(
    minutes=env.int("ALERT_PAYMENT_FAILURE_WINDOW_MINUTES", default=15)
)
ALERT_PAYMENT_FAILURE_RATE = env.float("ALERT_PAYMENT_FAILURE_RATE", default=0.5)
ALERT_PAYMENT_FAILURE_MIN_COUNT = env.int("ALERT_PAYMENT_FAILURE_MIN_COUNT", default=10)
ALERT_WEBHOOK_BACKLOG = env.int("ALERT_WEBHOOK_BACKLOG", default=100)
ALERT_WEBHOOK_BACKLOG_AGE = timedelta(seconds=env.int("ALERT_WEBHOOK_BACKLOG_AGE_SECONDS", 900))
ALERT_CHAIN_LAG_SECONDS = env.int("ALERT_CHAIN_LAG_SECONDS", default=120)
ALERT_CHAIN_LAG_BLOCKS = env.int("ALERT_CHAIN_LAG_BLOCKS", default=50)
# No scheduled job has finished for this long: the workers are stopped or cannot reach the
# broker (the alert is evaluated by beat, in its own process, as well as by a worker job).
ALERT_WORKERS_SILENT_SECONDS = env.int("ALERT_WORKERS_SILENT_SECONDS", default=600)
ALERT_EVALUATE_SECONDS = env.int("ALERT_EVALUATE_SECONDS", default=60)

#: Settings (and environment variables) whose values never appear in a log line.
LOG_REDACT_NAMES = [
    "SECRET_KEY",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "ESCROW_OPERATOR_KEY",
    "EMAIL_HOST_PASSWORD",
    "METRICS_TOKEN",
    "DATABASE_URL",
    "PAYOUT_WALLET_KEY",
    "CHAIN_WEBHOOK_SECRET",
    "CHAIN_RPC_URL",  # a provider's RPC URL often carries its API key
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CHAINS_JSON",
    "RECEIPTS_STORAGE_OPTIONS",
    # Structured: only their secret fields (each chain's rpc_url, operator_key, payout_key and
    # the variables its *_key_env names; the storage's keys and URLs).
    "CHAINS",
    "STORAGES",
]
LOGGING["filters"] = {
    "context": {"()": "ops.logging.ContextFilter"},
    "redact": {"()": "ops.logging.RedactingFilter"},
}
LOGGING["handlers"]["console"]["filters"] = ["context", "redact"]
LOGGING["formatters"]["json"]["fmt"] = (
    "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(order_id)s %(payment_id)s"
)
LOGGING["formatters"]["plain"]["format"] = (
    "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
)
# --- back office, receipts and notifications ------------------------------------------------
INSTALLED_APPS.append("notifications")
PLATFORM_NAME = env("PLATFORM_NAME", default="orderpay")
PLATFORM_URL = env("PLATFORM_URL", default="http://127.0.0.1:8000")
#: Block explorer per chain id: a transaction is linked as ``<base>/tx/<hash>``.
EXPLORER_URLS: dict[int, str] = {
    1: "https://etherscan.io",
    11155111: "https://sepolia.etherscan.io",
    8453: "https://basescan.org",
    137: "https://polygonscan.com",
    **{int(k): v for k, v in env.json("EXPLORER_URLS", default={}).items()},
}
#: Stripe's dashboard: a PaymentIntent is linked as ``<base>/payments/<id>``.
STRIPE_DASHBOARD_URL = env("STRIPE_DASHBOARD_URL", default="https://dashboard.stripe.com/test")
#: Receipt PDFs go through the "receipts" storage alias: local files here and in development,
#: an S3-compatible bucket in production (django-storages; see ``receipts_storage_config``).
FILE_STORAGE = "django.core.files.storage.FileSystemStorage"
S3_STORAGE = "storages.backends.s3.S3Storage"


def receipts_storage_config(default_backend: str) -> dict[str, object]:
    """``STORAGES["receipts"]`` from the environment. The S3 backend takes its bucket, endpoint
    and region from RECEIPTS_S3_*; its keys come from boto3's own chain (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, or the host's role), never from settings. Every render writes its one
    deterministic key, so the storage overwrites rather than renaming."""
    backend = env("RECEIPTS_STORAGE_BACKEND", default=default_backend)
    options: dict[str, object] = {}
    if backend == S3_STORAGE:
        bucket = env("RECEIPTS_S3_BUCKET", default="")
        if not bucket:
            raise ImproperlyConfigured(
                "Set RECEIPTS_S3_BUCKET (receipts are kept in an S3-compatible bucket), or "
                f"RECEIPTS_STORAGE_BACKEND={FILE_STORAGE} on a single host."
            )
        options = {
            "bucket_name": bucket,
            "endpoint_url": env("RECEIPTS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env("RECEIPTS_S3_REGION", default="") or None,
            "file_overwrite": True,
            "default_acl": None,  # the bucket's own policy: private
        }
    elif backend == FILE_STORAGE:
        options = {"allow_overwrite": True}
    return {
        "BACKEND": backend,
        "OPTIONS": {**options, **env.json("RECEIPTS_STORAGE_OPTIONS", default={})},
    }


STORAGES["receipts"] = receipts_storage_config(FILE_STORAGE)
RECEIPT_NUMBER_PREFIXES = {"receipt": "RCPT", "credit_note": "CN"}
#: Addresses copied on dispute emails (comma-separated); empty: buyer and seller only.
OPERATOR_EMAILS = env.list("OPERATOR_EMAILS", default=[])
#: The email sweeper looks at audit events older than AFTER (their task had its chance) and
#: newer than WINDOW, and sends what was not sent.
NOTIFICATION_SWEEP_AFTER = timedelta(minutes=env.int("NOTIFICATION_SWEEP_AFTER_MINUTES", 5))
NOTIFICATION_SWEEP_WINDOW = timedelta(hours=env.int("NOTIFICATION_SWEEP_WINDOW_HOURS", 48))

# --- chain (crypto and escrow payments) -----------------------------------------------------
PAYMENT_PROVIDER_CLASSES["chain"] = "payments.providers.chain.provider.ChainProvider"
PAYMENT_PROVIDER_CLASSES["escrow"] = "payments.providers.chain.provider.EscrowProvider"
WEBHOOK_SOURCES.append("payments.webhooks.chain.ChainWebhookSource")
CHAIN_WEBHOOK_SECRET = env("CHAIN_WEBHOOK_SECRET", default="")
CHAIN_WEBHOOK_TOLERANCE_SECONDS = env.int("CHAIN_WEBHOOK_TOLERANCE_SECONDS", default=300)
CHAIN_POLL_SECONDS = env.int("CHAIN_POLL_SECONDS", default=5)
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
        "escrow_version": env.int("ESCROW_CONTRACT_VERSION", default=0),
        "escrow_authorization_seconds": env.int(
            "ESCROW_AUTHORIZATION_SECONDS", default=30 * 24 * 3600
        ),
        "arbiter_key": env("ESCROW_ARBITER_KEY", default=""),
        "payment_contract": env("PAYMENT_CONTRACT_ADDRESS", default=""),
        "legacy_transfers": env.bool("CHAIN_LEGACY_TRANSFERS", default=False),
        "deposit_factory": env("DEPOSIT_FACTORY_ADDRESS", default=""),
        "deposit_implementation": env("DEPOSIT_FORWARDER_ADDRESS", default=""),
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

# --- performance ----------------------------------------------------------------------------
#: With persistent connections (CONN_MAX_AGE > 0; production's default), check a reused
#: connection once at the start of each request, so a database restart or a killed backend
#: costs one reconnect rather than one failed request.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)

# --- refund sweeper -------------------------------------------------------------------------
#: Pending refunds with no provider reference, untouched this long, are reconciled with the
#: provider or sent by ``payments.sweep_pending_refunds``.
REFUND_SWEEP_AFTER = timedelta(minutes=env.int("REFUND_SWEEP_AFTER_MINUTES", default=10))
