"""Receipts: PDFs rendered per second by one worker (one process), warm.

    make bench-receipts        (python -m benchmarks.receipts_pdf [--count N])

Two figures: ``receipt_pdf_bytes`` alone (template + WeasyPrint), and ``receipt_render``
(the task's work: render, store the file, keep its SHA-256, in one transaction). The first
renders are the warm-up (fonts, templates) and are not counted.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks.common import database_url, drop_database, header, percentile, setup_django, table

WARMUP = 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=40)
    args = parser.parse_args()
    header("receipts: PDFs per second, one worker, warm", "make bench-receipts")
    db = database_url("receipts")
    media = tempfile.mkdtemp(prefix="orderpay-bench-media-")
    setup_django(
        db,
        PAYMENT_PROVIDER_FIAT="dummy",
        CELERY_TASK_ALWAYS_EAGER="True",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        MEDIA_ROOT=media,
    )
    try:
        run(args.count, media)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(db)


def run(count: int, media: str) -> None:
    from django.conf import settings

    settings.MEDIA_ROOT = media
    from decimal import Decimal

    from orders.audit import Actor
    from orders.models import Order
    from payments.providers.base import Outcome, ProviderResult
    from payments.services.payments import payment_apply_result, payment_create, payment_start
    from receipts.models import PaymentReceipt
    from receipts.pdf import receipt_pdf_bytes
    from receipts.services import receipt_issue_for_payment, receipt_render
    from tests.factories import UserFactory

    buyer, seller = UserFactory(username="bench-buyer"), UserFactory(username="bench-seller")
    order = Order.objects.create(
        buyer=buyer, seller=seller, amount=Decimal("123.45"), currency="USD", description="bench"
    )
    actor = Actor.for_user(buyer)
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    payment_apply_result(
        payment_id=payment.id,
        actor=Actor.for_webhook("dummy", "evt_bench"),
        result=ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded"),
    )
    receipt, _ = receipt_issue_for_payment(payment_id=payment.id)
    receipt = PaymentReceipt.objects.select_related(
        "payment__order__buyer", "payment__order__seller", "refund"
    ).get(pk=receipt.pk)
    for _ in range(WARMUP):
        receipt_pdf_bytes(receipt)

    rows = []
    for label, fn in (
        ("receipt_pdf_bytes (render only)", lambda: receipt_pdf_bytes(receipt)),
        (
            "receipt_render (render+store+hash)",
            lambda: receipt_render(receipt_id=receipt.id, force=True),
        ),
    ):
        times = []
        start = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        wall = time.perf_counter() - start
        rows.append(
            [label, count, count / wall, percentile(times, 50) * 1000, percentile(times, 99) * 1000]
        )
    size = len(receipt_pdf_bytes(receipt))
    print(table(["what", "PDFs", "PDFs/s", "p50 ms", "p99 ms"], rows))
    print(
        f"PDF size: {size:,} bytes; one process, one thread; warm-up renders not counted: {WARMUP}"
    )


if __name__ == "__main__":
    main()
