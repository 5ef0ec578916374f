"""gunicorn settings for production: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Every value can be overridden from the environment (docs/configuration.md).
"""

import multiprocessing
import os

wsgi_app = "config.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Provider calls have their own timeouts (well under this); a request still running after it
# is killed and logged rather than holding a worker forever.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle workers now and then (with jitter, so they do not all restart together).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "100"))
# Behind the TLS-terminating proxy: trust its X-Forwarded-* only from these addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proxy_allow_ips = forwarded_allow_ips
# Heartbeat files in memory, not on a possibly slow disk.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108
# Application logs go through Django's LOGGING; the access log carries the request id.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s "%(a)s"'
# The master loads the application once (config/wsgi.py imports every view and the webhook
# sources); each worker, and each one that replaces a recycled worker, is a fork of it, ready
# at once. Deploy by restarting the master (a HUP does not load new code with preload).
preload_app = os.environ.get("GUNICORN_PRELOAD", "true").lower() in ("1", "true", "yes", "on")


def post_worker_init(worker: object) -> None:
    """Open this worker's database connection and broker connection before it takes its
    first request (connections are never shared across a fork), so that request, the first
    after a recycle too, does not pay for them."""
    from celery import current_app
    from django.db import connection

    try:
        connection.ensure_connection()
        with current_app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1)
    except Exception:  # a dependency down: the request reports it, /readyz too
        return
