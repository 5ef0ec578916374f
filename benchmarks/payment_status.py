"""payment-status: p50/p99 latency and query count for orders with 1, 10 and 100 payment
transactions, cold (the order's cached status dropped before every request) and cached.

    make bench-payment-status   (python -m benchmarks.payment_status [--requests N])

Requests go through Django's test client in this process (the whole middleware stack, token
authentication, the view, JSON rendering; no network, no gunicorn) on PostgreSQL, with the
Redis cache (REDIS_URL). Query counts come from Django's CaptureQueriesContext.
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

from benchmarks.common import database_url, drop_database, header, percentile, setup_django, table

SIZES = (1, 10, 100)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    header("payment-status: latency and queries", "make bench-payment-status")
    db = database_url("status")
    setup_django(db, CELERY_TASK_ALWAYS_EAGER="True")
    try:
        run(args.requests)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(db)


def seed(n: int, buyer, seller):  # type: ignore[no-untyped-def]
    """An order with n payments: n-1 failed attempts and the last one confirmed."""
    from django.utils import timezone

    from orders.models import Order
    from payments.models import PaymentTransaction

    order = Order.objects.create(
        buyer=buyer, seller=seller, amount=Decimal("100.00"), currency="USD", description=f"{n}"
    )
    now = timezone.now()
    rows = [
        PaymentTransaction(
            order=order,
            method="fiat",
            provider="stripe",
            amount=Decimal("100.00"),
            currency="USD",
            status="failed" if i < n - 1 else "confirmed",
            confirmed_at=None if i < n - 1 else now,
            payment_intent_id=f"pi_bench_{order.id.hex[:12]}_{i}",
            created_at=now - timezone.timedelta(seconds=n - i),
        )
        for i in range(n)
    ]
    PaymentTransaction.objects.bulk_create(rows)
    return order


def run(requests: int) -> None:
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    from payments.selectors import payment_status_invalidate
    from tests.factories import UserFactory

    buyer, seller = UserFactory(username="bench-buyer"), UserFactory(username="bench-seller")
    token = Token.objects.create(user=buyer).key
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    rows = []
    for n in SIZES:
        order = seed(n, buyer, seller)
        url = f"/api/orders/{order.id}/payment-status"
        assert client.get(url).status_code == 200
        for mode in ("cold", "cached"):
            times, queries = [], []
            for _ in range(requests):
                if mode == "cold":
                    payment_status_invalidate(order.id)
                else:
                    client.get(url)  # make sure the entry is there
                with CaptureQueriesContext(connection) as ctx:
                    t0 = time.perf_counter()
                    response = client.get(url)
                    times.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.content[:200]
                queries.append(len(ctx.captured_queries))
            rows.append(
                [
                    n,
                    mode,
                    requests,
                    percentile(times, 50) * 1000,
                    percentile(times, 99) * 1000,
                    f"{min(queries)}-{max(queries)}"
                    if min(queries) != max(queries)
                    else queries[0],
                ]
            )
    cache.close()
    print(table(["transactions", "cache", "requests", "p50 ms", "p99 ms", "queries"], rows))
    print("through Django's test client in-process (no gunicorn, no network), token auth;")
    print("cold = the order's cache generation bumped before each request")


if __name__ == "__main__":
    main()
