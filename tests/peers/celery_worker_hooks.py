"""Loaded into the test suite's Celery worker only (``celery worker -I`` from
tests/peers/celery_worker.py); production never imports it.

- Settings the test process sets per test and the worker cannot get from the environment
  (test settings force them): ``ORDERPAY_TEST_PAYMENT_PROVIDERS`` (JSON), and
  ``ORDERPAY_TEST_EMAIL_DIR`` (Django's file-based email backend: one file per email sent).
- Pause points: with ``ORDERPAY_TEST_HOOK_DIR`` set, a task reaching a pause point while
  ``<dir>/block-<name>`` exists writes ``<dir>/reached-<name>`` and waits there (inside its
  transaction, holding its locks) until the file is removed or the worker is killed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import django

django.setup()

HOOK_DIR = os.environ.get("ORDERPAY_TEST_HOOK_DIR", "")


def pause_point(name: str) -> None:
    if not HOOK_DIR:
        return
    block = Path(HOOK_DIR, f"block-{name}")
    if not block.exists():
        return
    Path(HOOK_DIR, f"reached-{name}").write_text(str(os.getpid()))
    while block.exists():
        time.sleep(0.05)


def _configure() -> None:
    from django.conf import settings

    providers = os.environ.get("ORDERPAY_TEST_PAYMENT_PROVIDERS")
    if providers:
        settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, **json.loads(providers)}
    email_dir = os.environ.get("ORDERPAY_TEST_EMAIL_DIR")
    if email_dir:
        settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
        settings.EMAIL_FILE_PATH = email_dir


def _install_pause_points() -> None:
    import receipts.services as receipt_services
    from payments.webhooks.stripe import StripeWebhookSource

    process = StripeWebhookSource.process

    def process_then_pause(self, event):  # type: ignore[no-untyped-def]
        process(self, event)  # the payment moved, inside the event's transaction
        pause_point("webhook_processed")

    StripeWebhookSource.process = process_then_pause  # type: ignore[method-assign]

    sequence_next = receipt_services._sequence_next

    def sequence_next_then_pause(kind: str, year: int) -> int:
        number = sequence_next(kind, year)  # the sequence row is locked, the number taken
        pause_point("receipt_numbered")
        return number

    receipt_services._sequence_next = sequence_next_then_pause


_configure()
_install_pause_points()
