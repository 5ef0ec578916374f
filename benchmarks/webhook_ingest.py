"""Webhook ingest: wrk replays pre-signed Stripe events at 1, 4 and 16 connections against
orderpay and a dj-stripe peer (benchmarks/djstripe_peer, its default and deferred modes), each
on gunicorn and PostgreSQL; pgbench's TPC-B at the same client counts; then one real Celery
worker (Redis) drains orderpay's backlog.

    make bench-webhooks  (python -m benchmarks.webhook_ingest [--seconds S] [--payments N]
                          [--ack-only] [--servers orderpay,djstripe-default,djstripe-deferred])

What is measured:
- acknowledged: the webhook answered 200. For orderpay: the signature verified and the event
  stored once in the inbox (production dispatches from the inbox: no broker in the request).
  wrk (Debian's package) keeps its connections alive and sends each pre-signed event once
  (benchmarks/wrk_replay.lua: thread k of n sends every n-th line of the events file); the
  events are unique ``payment_intent.succeeded`` events over N confirmed PaymentIntents, the
  same bodies and signatures for every server (with their own ids).
- gunicorn runs as production ships it: config/gunicorn.conf.py (its max_requests recycling
  included), WEB_CONCURRENCY=4 sync workers (BENCH_WEB_WORKERS), ``config.settings.production``
  with a throw-away SECRET_KEY; the client sends ``X-Forwarded-Proto: https`` as the
  TLS-terminating proxy does. The peer runs on gunicorn with as many sync workers.
- processed: one worker (``celery worker --concurrency 1``, its inbox dispatcher included)
  runs every stored event: it re-reads the PaymentIntent from localstripe over HTTP (real, on
  loopback), applies it (payment -> confirmed, order -> paid, audit rows) and marks the event
  processed; that re-read also settles the PaymentIntent's other events stored before it.
  Rate = events / (last processed_at - first processed_at), and re-reads per second; the
  follow-on tasks (receipt PDF, e-mails) queue behind the backlog and are not in the figure.
- afterwards every server's acknowledged events are counted in its database (stored once)
  and, after the drain, orderpay's as processed.
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
    WEB_WORKERS,
    database_url,
    django_env,
    drop_database,
    header,
    setup_django,
    table,
    wait_until_answers,
)

LEVELS = (1, 4, 16)
WEBHOOK_SECRET = "whsec_orderpay_bench"
PGBENCH_SECONDS = int(os.environ.get("BENCH_PGBENCH_SECONDS", "10"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8, help="wrk's duration per level")
    parser.add_argument("--payments", type=int, default=200, help="PaymentIntents the events name")
    parser.add_argument("--ack-only", action="store_true", help="skip the worker's drain")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="which of orderpay, djstripe-default, djstripe-deferred to measure",
    )
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
        servers = tuple(s for s in SERVERS if s in args.servers.split(","))
        run(
            args.seconds,
            args.payments,
            db,
            extra,
            stripe,
            logdir,
            procs,
            drain=not args.ack_only,
            servers=servers,
        )
    finally:
        for p in procs:
            stop(p)
        stripe.stop()
        from django.db import connections

        connections.close_all()
        drop_database(db)
        drop_database(database_url("pgbench"))
        drop_database(database_url("djstripe"))


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
            "api_version": "2024-06-20",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {
                "object": {
                    "id": pi,
                    "object": "payment_intent",
                    "status": "succeeded",
                    "livemode": False,
                }
            },
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
#: Events written per level: more than wrk can send in its duration, so none is sent twice.
EVENTS_PER_SECOND_CEILING = 2500


def events_file(path: Path, level: int, count: int, intents: list[str], prefix: str) -> None:
    """``count`` unique signed events for this level, one ``<signature>\t<body>`` per line."""
    with path.open("w") as out:
        for i in range(count):
            pi = intents[i % len(intents)]
            body, signature = signed_event(level * 10_000_000 + i, pi, prefix=prefix)
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
    wait_until_answers(f"{base}/healthz", gunicorn, "gunicorn", logdir / "gunicorn.log")
    return base


def side_by_side(results: dict[str, list[dict[str, Any]]], pg: list[tuple[float, float]]) -> str:
    """The issue's table: pgbench, dj-stripe's two modes and orderpay at each client count,
    with orderpay's acknowledgements per second over dj-stripe's deferred mode."""

    def cell(server: str, i: int) -> str:
        rows = results.get(server)
        if not rows:
            return "-"
        r = rows[i]
        return f"{r['acked_per_s']:,.0f}/s, p99 {r['p99_ms']:,.0f} ms"

    rows = []
    for i, c in enumerate(LEVELS):
        ratio = "-"
        if results.get("orderpay") and results.get("djstripe-deferred"):
            ours, theirs = results["orderpay"][i], results["djstripe-deferred"][i]
            ratio = f"{ours['acked_per_s'] / theirs['acked_per_s']:.2f}"
        rows.append(
            [
                c,
                f"{pg[i][0]:,.0f}",
                cell("djstripe-default", i),
                cell("djstripe-deferred", i),
                cell("orderpay", i),
                ratio,
            ]
        )
    return table(
        [
            "clients",
            "pgbench tps",
            "dj-stripe (in the request)",
            "dj-stripe deferred",
            "orderpay",
            "orderpay / deferred",
        ],
        rows,
    )


def event_prefix(server: str) -> str:
    """The event ids of one server's run: ``evt_bench_<server>_``."""
    return f"evt_bench_{server.replace('-', '_')}_"


SERVERS = ("djstripe-default", "djstripe-deferred", "orderpay")


def run(
    seconds: int,
    payments: int,
    db: str,
    extra: dict[str, str],
    stripe: Any,
    logdir: Path,
    procs: list,  # type: ignore[type-arg]
    drain: bool = True,
    servers: tuple[str, ...] = SERVERS,
) -> None:
    from django.db.models import Max, Min

    from benchmarks import djstripe_server
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
    peer_db = database_url("djstripe")
    peer_path = ""
    if any(s.startswith("djstripe") for s in servers):
        t0 = time.perf_counter()
        peer_path = djstripe_server.prepare(peer_db, stripe.url, WEBHOOK_SECRET, logdir)
        print(f"dj-stripe peer database migrated in {time.perf_counter() - t0:.1f}s")

    create_database(database_url("pgbench"))
    subprocess.run(
        ["pgbench", "-i", "-q", database_url("pgbench")], check=True, capture_output=True
    )

    results: dict[str, list[dict[str, Any]]] = {}
    sent: dict[str, int] = {}
    for server in servers:
        files = []
        for level_index, _ in enumerate(LEVELS):
            path = logdir / f"events-{server}-{level_index}.txt"
            count = EVENTS_PER_SECOND_CEILING * seconds
            events_file(path, level_index, count, intents, event_prefix(server))
            files.append(path)
        if server == "orderpay":
            base = start_gunicorn(env, logdir, procs)
            url = f"{base}/api/orders/payment/webhook"
        else:
            port = free_port()
            mode = server.split("-", 1)[1]
            procs.append(djstripe_server.start(mode, peer_db, stripe.url, port, logdir))
            url = f"http://127.0.0.1:{port}{peer_path}"
        # warm every worker (imports, connections)
        prefix = f"evt_warm_{server}_"
        warm = [signed_event(900000 + i, intents[0], prefix=prefix) for i in range(40)]
        post_all(url, warm, WEB_WORKERS)
        results[server] = []
        sent[server] = 0
        for level_index, c in enumerate(LEVELS):
            result = wrk(url, c, seconds, files[level_index])
            result["acked"] = result["requests"] - result["non2xx"]
            result["acked_per_s"] = result["acked"] / result["seconds"]
            results[server].append(result)
            sent[server] += result["sent"]
            wrapped = max(0, result["sent"] - EVENTS_PER_SECOND_CEILING * seconds)
            if wrapped:
                print(f"{server} at {c}: {wrapped} events were sent a second time")
        stop(procs.pop())
    pg = [pgbench(c) for c in LEVELS]

    print(
        table(
            ["server", "clients", "requests", "errors", "acked/s", "p50 ms", "p99 ms", "max ms"],
            [
                [
                    server,
                    c,
                    r["requests"],
                    r["non2xx"] + r["socket_errors"],
                    r["acked_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["max_ms"],
                ]
                for server, rows in results.items()
                for c, r in zip(LEVELS, rows, strict=True)
            ],
        )
    )
    print()
    print(side_by_side(results, pg))
    print(
        f"wrk, keep-alive, each event once; every server on gunicorn with {WEB_WORKERS} sync "
        "workers and PostgreSQL; orderpay with config/gunicorn.conf.py and "
        "config.settings.production; pgbench TPC-B -c N -j N."
    )
    for server in results:
        acked = sum(r["acked"] for r in results[server])
        if server == "orderpay":
            stored = WebhookEvent.objects.filter(event_id__startswith=event_prefix(server)).count()
            processed = None
        else:
            stored, processed = djstripe_server.counts(peer_db, event_prefix(server))
        ok = acked <= stored <= sent[server]
        print(
            f"{server}: {sent[server]} events sent, {acked} acknowledged, {stored} stored"
            + ("" if processed is None else f" ({processed} processed in the request)")
            + ("" if ok else "  <-- MISMATCH")
        )
    if "orderpay" not in servers or not drain:
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
    covered = done.filter(covered_by__isnull=False).count()
    print(
        table(
            [
                "worker",
                "events processed",
                "by their own re-read",
                "covered by a later re-read",
                "not processed",
                "processed/s",
                "re-reads/s",
                "wall s (incl. start)",
                "payments confirmed",
            ],
            [
                [
                    "1 (concurrency 1)",
                    n,
                    n - covered,
                    covered,
                    failed,
                    (n - 1) / seconds if n > 1 else 0.0,
                    (n - covered - 1) / seconds if n - covered > 1 else 0.0,
                    wall,
                    confirmed,
                ]
            ],
        )
    )
    print(
        "processing = re-read the PaymentIntent from localstripe (HTTP) + apply + audit; one "
        "re-read settles every event about that PaymentIntent stored before it"
    )


if __name__ == "__main__":
    main()
