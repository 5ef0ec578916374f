"""Webhook ingest: wrk replays pre-signed Stripe events at 1, 4 and 16 connections against
gunicorn on PostgreSQL; then one real Celery worker (Redis) drains the backlog; pgbench's TPC-B
at the same client counts, in the same run.

    make bench-webhooks        (python -m benchmarks.webhook_ingest [--seconds S] [--payments N])

What is measured:
- acknowledged: POST /api/orders/payment/webhook answered 200 (signature verified, the event
  stored once in the inbox, the processing task enqueued to Redis on commit). wrk (Debian's
  package) keeps its connections alive and sends each pre-signed event once
  (benchmarks/wrk_replay.lua: thread k of n sends every n-th line of the events file); the
  events are unique ``payment_intent.succeeded`` events over N confirmed PaymentIntents.
- gunicorn runs as production ships it: config/gunicorn.conf.py (its max_requests recycling
  included), WEB_CONCURRENCY=4 sync workers (BENCH_WEB_WORKERS), ``config.settings.production``
  with a throw-away SECRET_KEY; the client sends ``X-Forwarded-Proto: https`` as the
  TLS-terminating proxy does.
- processed: one worker (``celery worker --concurrency 1``) runs every stored event: it
  re-reads the PaymentIntent from localstripe over HTTP (real, on loopback), applies it
  (payment -> confirmed, order -> paid, audit rows) and marks the event processed. Rate =
  events / (last processed_at - first processed_at); the follow-on tasks it enqueues (receipt
  PDF, e-mails) queue behind the webhook backlog and are not in the figure.
- afterwards every acknowledged event is counted in the inbox (stored once) and, after the
  drain, as processed.
- pgbench: ``pgbench -i`` on a scratch database, then ``pgbench -c N -j N -T 10`` (TPC-B).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
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
    setup_django,
    table,
)

LEVELS = (1, 4, 16)
WEBHOOK_SECRET = "whsec_orderpay_bench"
PGBENCH_SECONDS = int(os.environ.get("BENCH_PGBENCH_SECONDS", "10"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8, help="wrk's duration per level")
    parser.add_argument("--payments", type=int, default=200, help="PaymentIntents the events name")
    parser.add_argument("--ack-only", action="store_true", help="skip the worker's drain")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed (Debian: apt-get install wrk; `make bench-webhooks` does)"
        )
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
        run(args.seconds, args.payments, db, extra, stripe, logdir, procs, drain=not args.ack_only)
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


WRK_SCRIPT = REPO / "benchmarks" / "wrk_replay.lua"
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "4"))
#: Events written per level: more than wrk can send in its duration, so none is sent twice.
EVENTS_PER_SECOND_CEILING = 2500


def events_file(path: Path, level: int, count: int, intents: list[str]) -> None:
    """``count`` unique signed events for this level, one ``<signature>\t<body>`` per line."""
    with path.open("w") as out:
        for i in range(count):
            body, signature = signed_event(level * 10_000_000 + i, intents[i % len(intents)])
            out.write(f"{signature}\t{body.decode()}\n")


def wrk(url: str, connections: int, seconds: int, events: Path) -> dict[str, Any]:
    threads = min(connections, 4)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(WRK_SCRIPT),
            url,
            "--",
            str(threads),
        ],
        env={**os.environ, "BENCH_EVENTS": str(events)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    return dict(json.loads(line[len("BENCH ") :]))


def start_gunicorn(env: dict[str, str], logdir: Path, procs: list) -> str:  # type: ignore[type-arg]
    port = free_port()
    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "/dev/null",
        ],
        env={**env, "WEB_CONCURRENCY": str(WEB_WORKERS)},
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
            return base
        except requests.RequestException:
            if time.monotonic() > deadline or gunicorn.poll() is not None:
                raise SystemExit(f"gunicorn did not start; see {logdir / 'gunicorn.log'}") from None
            time.sleep(0.2)


def run(
    seconds: int,
    payments: int,
    db: str,
    extra: dict[str, str],
    stripe: Any,
    logdir: Path,
    procs: list,  # type: ignore[type-arg]
    drain: bool = True,
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
    t0 = time.perf_counter()
    intents = seed_payments(payments, stripe)
    print(
        f"seeded {payments} payments (confirmed PaymentIntents in localstripe) "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    files = []
    for level_index, _ in enumerate(LEVELS):
        path = logdir / f"events-{level_index}.txt"
        events_file(path, level_index, EVENTS_PER_SECOND_CEILING * seconds, intents)
        files.append(path)

    base = start_gunicorn(env, logdir, procs)
    url = f"{base}/api/orders/payment/webhook"
    # warm every worker (imports, connections)
    warm = [signed_event(900000 + i, intents[0], prefix="evt_warm_") for i in range(40)]
    post_all(url, warm, WEB_WORKERS)

    create_database(database_url("pgbench"))
    subprocess.run(
        ["pgbench", "-i", "-q", database_url("pgbench")], check=True, capture_output=True
    )

    rows = []
    acknowledged = sent = 0
    for level_index, c in enumerate(LEVELS):
        result = wrk(url, c, seconds, files[level_index])
        tps, pg_lat = pgbench(c)
        ok = result["requests"] - result["non2xx"]
        acknowledged += ok
        sent += result["sent"]
        wrapped = max(0, result["sent"] - EVENTS_PER_SECOND_CEILING * seconds)
        rows.append(
            [
                c,
                result["requests"],
                result["non2xx"] + result["socket_errors"],
                ok / result["seconds"],
                result["p50_ms"],
                result["p99_ms"],
                result["max_ms"],
                tps,
                pg_lat,
                ok / result["seconds"] / tps,
            ]
        )
        if wrapped:
            print(f"level {c}: {wrapped} events were sent a second time (raise the ceiling)")
    stop(procs.pop())

    stored = WebhookEvent.objects.filter(event_id__startswith="evt_bench_").count()
    print(
        table(
            [
                "clients",
                "requests",
                "errors",
                "acked/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "pgbench tps",
                "pgbench lat ms",
                "ours/pgbench",
            ],
            rows,
        )
    )
    print(
        f"wrk, keep-alive; gunicorn {WEB_WORKERS} sync workers, config/gunicorn.conf.py, "
        f"config.settings.production. {sent} events sent, {acknowledged} acknowledged before "
        f"wrk stopped, {stored} stored in the inbox"
        + ("" if acknowledged <= stored <= sent else "  <-- MISMATCH")
    )
    if not drain:
        return

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
