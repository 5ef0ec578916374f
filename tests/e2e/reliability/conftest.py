"""The reliability suite: PostgreSQL, Redis and a real Celery worker (tests/peers/celery_worker).

Every test here is marked ``reliability``; without PostgreSQL (DATABASE_URL) or Redis
(REDIS_URL) they skip, saying which is missing. ``worker`` is the session's real worker with
this test's Celery calls going to Redis (not run eagerly); the worker reads the same test
database, and card payments go through the session's localstripe on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler as _StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test.testcases import LiveServerThread

from tests.payments.stripe.conftest import (  # noqa: F401
    WEBHOOK_SECRET,
    localstripe,
    stripe_local,
    stripe_on,
)
from tests.peers.celery_worker import CeleryWorker, celery_worker_process  # noqa: F401
from tests.peers.s3 import s3_bucket, s3_server  # noqa: F401
from tests.peers.smtp_sink import smtp_sink  # noqa: F401


def reliability_skip_reason() -> str | None:
    from django.conf import settings

    missing = []
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        missing.append("PostgreSQL (set DATABASE_URL)")
    if not settings.REDIS_URL:
        missing.append("Redis (set REDIS_URL)")
    if not missing:
        return None
    return "the reliability suite needs " + " and ".join(missing) + " and a real Celery worker"


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    reason = reliability_skip_reason()
    if reason is None:
        return
    for item in items:
        if "reliability" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def celery_worker_extra_env(localstripe) -> dict[str, str]:  # noqa: F811
    from tests.peers.localstripe import SECRET_KEY

    return {
        "ORDERPAY_TEST_PAYMENT_PROVIDERS": json.dumps({"fiat": "stripe"}),
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": localstripe.url,
        "STRIPE_TIMEOUT": "5",
        "STRIPE_MAX_NETWORK_RETRIES": "0",
    }


class _WideServer(ThreadedWSGIServer):
    # 50 clients connecting at once overflow the default listen backlog (10): resets.
    request_queue_size = 256


class _WideLiveServerThread(LiveServerThread):
    server_class = _WideServer


@pytest.fixture
def wide_live_server(transactional_db) -> Iterator[SimpleNamespace]:
    """Django's live server (threaded, on a free loopback port) with a listen backlog that
    takes 50 simultaneous connections; each request thread opens its own connection."""
    thread = _WideLiveServerThread("127.0.0.1", _StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait(30)
    if thread.error:
        raise thread.error
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{thread.port}")
    finally:
        thread.terminate()


@pytest.fixture
def worker(celery_worker_process, transactional_db) -> Iterator[CeleryWorker]:  # noqa: F811
    """The real worker, with this test's tasks sent to it through Redis. Torn down before the
    test database is emptied: waits until the worker has nothing left to do."""
    from config.celery_app import app

    w = celery_worker_process
    if w.process is None or w.process.poll() is not None:
        w.start()  # a previous test killed it
    w.purge()
    w.clear_emails()
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield w
    finally:
        for point in ("webhook_processed", "receipt_numbered"):
            w.unblock(point)
        try:
            w.wait_idle(timeout=45)
        finally:
            app.conf.task_always_eager = eager
            w.purge()
