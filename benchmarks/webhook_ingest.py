"""Webhook ingest: signed Stripe events posted at concurrency 1, 4 and 16 against gunicorn on
PostgreSQL; then one real Celery worker (Redis) drains the backlog; pgbench's TPC-B at the
same client counts, in the same run.

    make bench-webhooks        (python -m benchmarks.webhook_ingest [--events N])

What is measured:
- acknowledged: POST /api/orders/payment/webhook answered 200 (signature verified, the event
  stored once in the inbox, the processing task enqueued to Redis on commit). Loopback HTTP,
  one keep-alive-less connection per request from Python client threads on the same machine.
- processed: one worker (``celery worker --concurrency 1``) runs every stored event: it
  re-reads the PaymentIntent from localstripe over HTTP (real, on loopback; the
  PaymentIntents were created and confirmed there first), applies it (payment -> confirmed,
  order -> paid, audit rows) and marks the event processed. Rate = events / (last processed_at
  - first processed_at); the follow-on tasks it enqueues (receipt PDF, e-mails) queue behind
  the webhook backlog and are not in the figure.
- gunicorn and the worker run ``config.settings.production`` (persistent database connections,
  CONN_MAX_AGE, unless the environment overrides it), with a throw-away SECRET_KEY; the client
  sends ``X-Forwarded-Proto: https`` as the TLS-terminating proxy does.
- pgbench: ``pgbench -i`` on a scratch database, then ``pgbench -c N -j N -T 10`` (TPC-B).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import (
    REPO,
    database_url,
    django_env,
    drop_database,
    header,
    percentile,
    setup_django,
    table,
)

LEVELS = (1, 4, 16)
WEBHOOK_SECRET = "whsec_orderpay_bench"
PGBENCH_SECONDS = int(os.environ.get("BENCH_PGBENCH_SECONDS", "10"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200, help="events per concurrency level")
    args = parser.parse_args()
    header("webhook ingest vs pgbench TPC-B", "make bench-webhooks")
    db = database_url("webhooks")
    from tests.peers.localstripe import SECRET_KEY, start_localstripe

    logdir = Path(tempfile.mkdtemp(prefix="orderpay-bench-"))
    stripe = start_localstripe(logdir / "localstripe.log")
    extra = {
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_API_BASE": stripe.url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PAYMENT_PROVIDER_FIAT": "stripe",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "MEDIA_ROOT": str(logdir / "media"),
        "CELERY_TASK_ALWAYS_EAGER": "False",
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        setup_django(db, **extra)
        run(args.events, db, extra, stripe, logdir, procs)
    finally:
        for p in procs:
            stop(p)
        stripe.stop()
        from django.db import connections

        connections.close_all()
        drop_database(db)
        drop_database(database_url("pgbench"))


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)


def free_port() -> int:
    from tests.peers.localstripe import free_port as fp

    return fp()


def seed_payments(total: int, stripe: Any) -> list[str]:
    """total card payments, each with a PaymentIntent in localstripe confirmed with a card."""
    from orders.audit import Actor
    from orders.models import Order
    from payments.models import PaymentTransaction
    from payments.services.payments import payment_create, payment_start
    from tests.factories import UserFactory

    buyer, seller = UserFactory(username="bench-buyer"), UserFactory(username="bench-seller")
    actor = Actor.for_user(buyer)
    pm = stripe.payment_method()
    intents = []
    for _ in range(total):
        order = Order.objects.create(
            buyer=buyer, seller=seller, amount=Decimal("25.00"), currency="USD", description="b"
        )
        payment = payment_create(order_id=order.id, method="fiat", actor=actor)
        payment_start(payment_id=payment.id, actor=actor)
        pi = PaymentTransaction.objects.get(pk=payment.pk).payment_intent_id
        stripe.api("POST", f"/v1/payment_intents/{pi}", {"payment_method": pm})
        stripe.api("POST", f"/v1/payment_intents/{pi}/confirm", {})
        intents.append(pi)
    return intents


def signed_event(i: int, pi: str, prefix: str = "evt_bench_") -> tuple[bytes, str]:
    from payments.providers.stripe.client import sign_webhook_payload

    body = json.dumps(
        {
            "id": f"{prefix}{i:06d}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {"object": {"id": pi, "object": "payment_intent", "status": "succeeded"}},
        }
    )
    return body.encode(), sign_webhook_payload(body, WEBHOOK_SECRET)


def post_all(
    url: str, events: list[tuple[bytes, str]], concurrency: int
) -> tuple[float, list[float], int]:
    """Post every event with `concurrency` client threads; (wall seconds, latencies, non-200s)."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    queue = list(reversed(events))

    def worker() -> None:
        session = requests.Session()
        while True:
            with lock:
                if not queue:
                    return
                body, sig = queue.pop()
            t0 = time.perf_counter()
            r = session.post(
                url,
                data=body,
                headers={
                    "Stripe-Signature": sig,
                    "Content-Type": "application/json",
                    "X-Forwarded-Proto": "https",  # as the TLS-terminating proxy sends it
                },
                timeout=60,
            )
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if r.status_code != 200:
                    failures[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies, failures[0]


def pgbench(clients: int) -> tuple[float, float]:
    url = database_url("pgbench")
    out = subprocess.run(
        ["pgbench", "-c", str(clients), "-j", str(clients), "-T", str(PGBENCH_SECONDS), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
    lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
    return tps, lat


def run(
    per_level: int, db: str, extra: dict[str, str], stripe: Any, logdir: Path, procs: list
) -> None:
    from django.db.models import Max, Min

    from benchmarks.common import create_database
    from payments.models import WebhookEvent

    env = django_env(
        db,
        **extra,
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        METRICS_TOKEN=secrets.token_urlsafe(24),
        RECEIPTS_STORAGE_BACKEND="django.core.files.storage.FileSystemStorage",
    )
    # An empty queue in the benchmark's Redis database.
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "purge", "-f"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    total = per_level * len(LEVELS)
    t0 = time.perf_counter()
    intents = seed_payments(total, stripe)
    print(
        f"seeded {total} payments (confirmed PaymentIntents in localstripe) "
        f"in {time.perf_counter() - t0:.1f}s"
    )

    port = free_port()
    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.conf.py",
            "-w",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "/dev/null",
            "--max-requests",
            "0",
        ],
        env=env,
        cwd=REPO,
        stdout=(logdir / "gunicorn.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    procs.append(gunicorn)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{base}/healthz", timeout=2)
            break
        except requests.RequestException:
            if time.monotonic() > deadline or gunicorn.poll() is not None:
                raise SystemExit(f"gunicorn did not start; see {logdir / 'gunicorn.log'}") from None
            time.sleep(0.2)
    url = f"{base}/api/orders/payment/webhook"
    # warm both workers (imports, connections)
    warm = [signed_event(900000 + i, intents[0], prefix="evt_warm_") for i in range(10)]
    post_all(url, warm, 2)

    create_database(database_url("pgbench"))
    subprocess.run(
        ["pgbench", "-i", "-q", database_url("pgbench")], check=True, capture_output=True
    )

    rows = []
    for level_index, c in enumerate(LEVELS):
        chunk = intents[level_index * per_level : (level_index + 1) * per_level]
        events = [signed_event(level_index * per_level + i, pi) for i, pi in enumerate(chunk)]
        wall, lat, bad = post_all(url, events, c)
        tps, pg_lat = pgbench(c)
        acked = (len(events) - bad) / wall
        rows.append(
            [
                c,
                len(events),
                bad,
                acked,
                percentile(lat, 50) * 1000,
                percentile(lat, 99) * 1000,
                tps,
                pg_lat,
                acked / tps,
            ]
        )
    stop(gunicorn)

    stored = WebhookEvent.objects.filter(event_id__startswith="evt_bench_").count()
    print(
        table(
            [
                "clients",
                "events",
                "non-200",
                "acked/s",
                "p50 ms",
                "p99 ms",
                "pgbench tps",
                "pgbench lat ms",
                "ours/pgbench",
            ],
            rows,
        )
    )
    print(
        f"gunicorn -w 2 (sync workers), config/gunicorn.conf.py, config.settings.production "
        f"(CONN_MAX_AGE={env.get('CONN_MAX_AGE', 'default')}); {stored} events in the inbox"
    )

    # --- one worker drains the backlog -----------------------------------------------------
    worker_started = time.perf_counter()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        cwd=REPO,
        stdout=(logdir / "worker.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    procs.append(worker)
    inbox = WebhookEvent.objects.all()  # the benchmark's events and the 10 warm-up ones
    want = inbox.count()
    deadline = time.monotonic() + 900
    while inbox.filter(status=WebhookEvent.Status.PROCESSED).count() < want:
        if time.monotonic() > deadline or worker.poll() is not None:
            print(f"worker stopped early or timed out; see {logdir / 'worker.log'}")
            break
        time.sleep(0.25)
    wall = time.perf_counter() - worker_started
    stop(worker)
    done = inbox.filter(status=WebhookEvent.Status.PROCESSED)
    span = done.aggregate(first=Min("processed_at"), last=Max("processed_at"))
    n = done.count()
    failed = inbox.exclude(status=WebhookEvent.Status.PROCESSED).count()
    seconds = (span["last"] - span["first"]).total_seconds() if n > 1 else float("nan")
    from payments.models import PaymentTransaction

    confirmed = PaymentTransaction.objects.filter(status="confirmed").count()
    print(
        table(
            [
                "worker",
                "events processed",
                "not processed",
                "processed/s",
                "wall s (incl. start)",
                "payments confirmed",
            ],
            [
                [
                    "1 (concurrency 1)",
                    n,
                    failed,
                    (n - 1) / seconds if n > 1 else 0.0,
                    wall,
                    confirmed,
                ]
            ],
        )
    )
    print(
        "processing = re-read the PaymentIntent from localstripe (HTTP) + apply + audit, per event"
    )


if __name__ == "__main__":
    main()
