"""A deployment scaled out on one PostgreSQL and Redis, with production settings: two gunicorn
web nodes, two Celery workers, two beats, receipts in an S3 bucket (moto), emails to an SMTP
server (aiosmtpd), card payments at localstripe, every broker and cache key under a prefix.

A burst of card payments (orders through both nodes, each Stripe webhook delivered to both)
runs while one worker is SIGKILLed holding a webhook task inside its transaction and the
workers' and beats' database connections are terminated. Every effect happens once: orders,
payment confirmations, receipts (numbers without gaps, one object each in the bucket), emails
(counted at the SMTP server, one per notification row, Message-IDs unique). One beat sends
the schedule; when it dies the other takes over within the lease. With every worker stopped
the workers-silent alert fires from beat and its email arrives.

The figures (delay until the killed worker's task ran again, until the standby beat took
over, until the alert email arrived) are printed as ``scale-out figure: ...``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import requests
from django.conf import settings
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.authtoken.models import Token

from tests.e2e.reliability import cluster
from tests.payments.stripe.conftest import (
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    signed,
    stripe_event,
    wait_for,
)
from tests.peers.anvil import free_port
from tests.peers.celery_worker import database_url
from tests.peers.localstripe import SECRET_KEY
from tests.peers.s3 import REGION, bucket_keys
from tests.peers.smtp_sink import SmtpSink

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

PAYMENTS = 12
VISIBILITY_TIMEOUT = 12
RESTORE_INTERVAL = 2
BEAT_LEASE = 6
WORKERS_SILENT = 20  # above the beat takeover (lease + a tick) plus a job's interval
OPS_EMAIL = "ops@example.com"
FAST_JOBS = {  # staff may edit intervals in the admin; here the sweepers run every 3 s
    "orderpay: sweep webhook events": 3,
    "orderpay: sweep missing receipts": 3,
    "orderpay: sweep unsent notifications": 3,
}


def figure(name: str, value: float) -> None:
    print(f"scale-out figure: {name} = {value:.1f} s")


def post(url: str, **kwargs) -> requests.Response:  # type: ignore[no-untyped-def]
    """What a client or Stripe does: send again after a network error or a 5xx."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = requests.post(url, timeout=20, **kwargs)
            if response.status_code < 500:
                return response
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer below 500")
        time.sleep(0.3)


def terminate_connections(roles: tuple[str, ...], idle_too: str = "orderpay-web") -> int:
    """Terminate every database connection of these roles (their application_name), and the
    idle ones of ``idle_too`` (a web node's kept connection between requests)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND (application_name = ANY(%s) OR (application_name = %s AND state = 'idle'))",
            [list(roles), idle_too],
        )
        return int(cursor.fetchone()[0])


@pytest.fixture
def deployment(transactional_db, localstripe, s3_server, s3_bucket, smtp_sink, tmp_path):
    localstripe.reset()
    tag = uuid.uuid4().hex[:8]
    db_url = database_url(connection.settings_dict)
    base = {
        k: v
        for k, v in __import__("os").environ.items()
        if not k.startswith(("DJANGO_", "CELERY_"))
    }
    env = {
        **base,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "METRICS_TOKEN": "metrics-" + secrets.token_urlsafe(16),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "BROKER_KEY_PREFIX": f"scale-{tag}:",
        "CACHE_KEY_PREFIX": f"scale-{tag}",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": localstripe.url,
        "STRIPE_TIMEOUT": "10",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_sink.port),
        "RECEIPTS_S3_BUCKET": s3_bucket,
        "RECEIPTS_S3_ENDPOINT_URL": s3_server,
        "RECEIPTS_S3_REGION": REGION,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "CELERY_TASK_TIME_LIMIT": str(VISIBILITY_TIMEOUT - 2),
        "CELERY_TASK_SOFT_TIME_LIMIT": str(VISIBILITY_TIMEOUT - 4),
        "CELERY_UNACKED_RESTORE_INTERVAL": str(RESTORE_INTERVAL),
        "BEAT_LEASE_SECONDS": str(BEAT_LEASE),
        "ALERT_EVALUATE_SECONDS": "2",
        "ALERT_WORKERS_SILENT_SECONDS": str(WORKERS_SILENT),
        "OPS_ALERT_EMAILS": OPS_EMAIL,
        "NOTIFICATION_SWEEP_AFTER_MINUTES": "0",  # the sweeper races the on-commit sends
        "RETRY_BASE_DELAY_SECONDS": "1",
        "RETRY_MAX_DELAY_SECONDS": "4",
        "THROTTLE_RATE_PAYMENTS": "1000/minute",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }

    def role(name: str, **extra: str) -> dict[str, str]:
        return {**env, "DATABASE_URL": f"{db_url}?application_name=orderpay-{name}", **extra}

    from django.core.management import call_command

    call_command("setup_periodic_tasks")
    for name, every in FAST_JOBS.items():
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=every, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.filter(name=name).update(interval=interval)

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    webs = [cluster.web_node(f"web{i}", free_port(), role("web"), logs) for i in (1, 2)]
    workers = [
        # the first worker loads the test pause points: it holds a webhook task when told to
        # and it runs one task at a time, so that what the kill interrupts is that task alone
        # (an email killed between its send and its record is the documented second copy)
        cluster.worker(
            "worker1", role("worker", ORDERPAY_TEST_HOOK_DIR=str(hooks)), logs, True, concurrency=1
        ),
        cluster.worker("worker2", role("worker"), logs),
    ]
    beats = [cluster.beat(f"beat{i}", role("beat"), logs) for i in (1, 2)]
    everything = [*webs, *workers, *beats]
    try:
        for process in workers:
            process.start(cluster.worker_ready)
        for process in beats:
            process.start(cluster.beat_ready)
        for process in webs:
            process.start(cluster.web_ready)
        yield SimpleNamespace(
            webs=webs, workers=workers, beats=beats, hooks=hooks, env=env, logs=logs
        )
    finally:
        for process in everything:
            process.stop()
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"scale-{tag}*"):
            client.delete(key)
        client.close()


def test_a_burst_with_faults_on_a_scaled_out_deployment_has_every_effect_once(
    deployment,
    localstripe,
    s3_server,
    s3_bucket,
    smtp_sink: SmtpSink,
    buyer,
    seller,
):
    from notifications.models import Notification
    from notifications.services import _message_id
    from ops.models import Incident
    from orders.models import Order, OrderPaymentEvent
    from payments.models import PaymentTransaction, WebhookEvent
    from receipts.models import PaymentReceipt, receipt_pdf_key

    webs, workers, beats = deployment.webs, deployment.workers, deployment.beats
    token = Token.objects.create(user=buyer).key
    killed_worker, survivor = workers
    (deployment.hooks / "block-webhook_processed").write_text("")

    def pay(i: int) -> dict:
        node = webs[i % 2]
        order = post(
            node.url + "/api/orders",
            json={
                "seller_id": seller.pk,
                "amount": f"{10 + i}.00",
                "currency": "USD",
                "payment_method": "fiat",
            },
            headers={"Authorization": f"Token {token}", "Idempotency-Key": f"burst-{i}"},
        )
        assert order.status_code == 201, order.text
        body = order.json()
        payment = body["transaction"]
        assert localstripe.confirm_with_card(payment["payment_intent_id"])["status"] == "succeeded"
        event = stripe_event(
            "payment_intent.succeeded",
            {
                "id": payment["payment_intent_id"],
                "object": "payment_intent",
                "status": "succeeded",
                "metadata": {"payment_id": payment["id"], "order_id": body["id"]},
            },
            event_id=f"evt_scale_{i}",
        )
        data, header = signed(event)
        for web in webs:  # delivered twice, once to each node
            answer = post(
                web.url + WEBHOOK_PATH,
                data=data,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
            assert answer.status_code == 200, answer.text
        return body

    timings: dict[str, float] = {}
    terminated: list[int] = []

    def faults() -> None:
        reached = deployment.hooks / "reached-webhook_processed"
        wait_for(reached.exists, 90, "the first worker holding a webhook task")
        killed_worker.kill()  # SIGKILL, its pool too: the task was never acknowledged
        timings["killed"] = time.monotonic()
        for _ in range(3):
            terminated.append(terminate_connections(("orderpay-worker", "orderpay-beat")))
            time.sleep(1.0)

    fault_thread = threading.Thread(target=faults)
    fault_thread.start()
    with ThreadPoolExecutor(max_workers=6) as pool:
        orders = list(pool.map(pay, range(PAYMENTS)))
    fault_thread.join(timeout=120)
    assert "killed" in timings, "the first worker never held a webhook task"

    wait_for(
        lambda: WebhookEvent.objects.filter(status="processed").count() == PAYMENTS,
        90,
        "every webhook event processed, the killed worker's too",
    )
    figure("the killed worker's webhook task ran again after", time.monotonic() - timings["killed"])

    def state() -> dict:
        return {
            "payments": dict(Counter(PaymentTransaction.objects.values_list("status", flat=True))),
            "receipts": PaymentReceipt.objects.exclude(sha256="").count(),
            "emails": dict(Counter(Notification.objects.values_list("status", flat=True))),
        }

    def settled() -> bool:
        return state() == {
            "payments": {"confirmed": PAYMENTS},
            "receipts": PAYMENTS,
            "emails": {"sent": 2 * PAYMENTS},
        }

    try:
        wait_for(settled, 120, "every payment confirmed, receipted and emailed")
    except AssertionError as exc:
        unsent = list(
            Notification.objects.exclude(status="sent").values(
                "id", "status", "attempts", "claimed_at", "last_error"
            )
        )
        raise AssertionError(
            f"{exc}: {state()}, unsent {unsent}; logs in {deployment.logs}"
        ) from exc
    assert any(terminated), "no database connection was terminated"

    # Orders and payments: once each, whatever was retried or delivered twice.
    assert Order.objects.count() == PAYMENTS
    assert set(Order.objects.values_list("status", flat=True)) == {"paid"}
    assert {o["id"] for o in orders} == {
        str(pk) for pk in Order.objects.values_list("id", flat=True)
    }
    audit = OrderPaymentEvent.objects.all()
    assert audit.filter(entity="payment", action="confirm").count() == PAYMENTS
    assert audit.filter(entity="order", action="mark_paid").count() == PAYMENTS
    assert WebhookEvent.objects.count() == PAYMENTS  # the second delivery of each was a duplicate

    # Receipts: numbered 1..N without gaps, one object each under its key in the bucket.
    receipts = list(PaymentReceipt.objects.order_by("sequence"))
    assert [r.sequence for r in receipts] == list(range(1, PAYMENTS + 1))
    assert bucket_keys(s3_server, s3_bucket) == sorted(receipt_pdf_key(r) for r in receipts)

    # Emails: each notification row went out once (the SMTP server's count), none twice.
    customer_mail = [m for m in smtp_sink.messages() if OPS_EMAIL not in (m["To"] or "")]
    sent = list(Notification.objects.filter(status="sent"))
    ids = [m["Message-ID"] for m in customer_mail]
    assert len(ids) == len(set(ids)), "an email was sent twice"
    assert sorted(ids) == sorted(_message_id(row) for row in sent)
    assert len(sent) == 2 * PAYMENTS  # buyer and seller, once per confirmed payment

    # One beat sent the schedule; the other waited.
    senders = [b for b in beats if cluster.sent_jobs(b)]
    assert len(senders) == 1, [cluster.sent_jobs(b) for b in beats]
    leader, standby = senders[0], next(b for b in beats if b is not senders[0])
    assert "waits: another beat holds the schedule" in standby.log()

    # /metrics of a node: the prefixed queue, the beat's last run.
    metrics = requests.get(
        webs[0].url + "/metrics",
        headers={"Authorization": f"Bearer {deployment.env['METRICS_TOKEN']}"},
        timeout=10,
    ).text
    assert 'orderpay_queue_messages{queue="celery"}' in metrics
    assert "orderpay_beat_last_run_age_seconds" in metrics

    # The leading beat dies: the standby takes the schedule over within its lease.
    leader.kill()
    leader_died = time.monotonic()
    wait_for(lambda: cluster.sent_jobs(standby), BEAT_LEASE * 4, "the standby beat sending")
    figure("standby beat sent its first job after the leader died", time.monotonic() - leader_died)

    # Every worker stopped: the alert fires from beat and its email arrives.
    assert not Incident.objects.filter(key="workers_silent").exists()  # no false alarm so far
    survivor.stop()
    stopped = time.monotonic()

    def alerted() -> bool:
        return Incident.objects.filter(
            key="workers_silent", resolved_at__isnull=True
        ).exists() and any(
            OPS_EMAIL in (m["To"] or "") and "ALERT" in (m["Subject"] or "")
            for m in smtp_sink.messages()
        )

    wait_for(alerted, WORKERS_SILENT * 3, "the workers-silent alert email")
    figure(
        "workers-silent alert email arrived after the last worker stopped",
        time.monotonic() - stopped,
    )
    print("scale-out logs:", json.dumps(str(deployment.logs)))
