"""The inbox dispatcher: a thread in every Celery worker (WEBHOOK_DISPATCH = "inbox") that
enqueues the processing of new webhook events, so the webhook request itself does one INSERT
and never talks to the broker.

Every WEBHOOK_DISPATCH_POLL_SECONDS (at once again after a full batch) it runs
``webhook_dispatch``: the rows it claims are locked (SKIP LOCKED), so any number of workers
dispatch side by side without sending an event twice. A failed pass (the database or broker
gone) is logged and the next pass starts on a new connection; events that wait too long are
also found by the ``payments.sweep_webhook_events`` job, and ``orderpay_webhook_backlog``
shows them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)
BATCH = 200


class InboxDispatcher(bootsteps.StartStopStep):
    """Registered on the worker blueprint by config/celery_app.py; included only when the
    settings ask for inbox dispatch."""

    label = "inbox dispatcher"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def include_if(self, worker: Any) -> bool:
        from django.conf import settings

        return bool(settings.WEBHOOK_DISPATCH == "inbox")

    def start(self, worker: Any) -> None:
        self.stopping.clear()
        self.thread = threading.Thread(target=self.run, name="inbox-dispatcher", daemon=True)
        self.thread.start()
        logger.info("inbox dispatcher started")

    def stop(self, worker: Any) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)

    def run(self) -> None:
        from celery import current_app
        from django.conf import settings
        from django.db import connection

        from payments.webhooks.inbox import webhook_dispatch

        # by name, as services enqueue (common.tasks): the tasks module sits above this one
        process = current_app.tasks["payments.tasks.process_webhook_event"]
        interval = settings.WEBHOOK_DISPATCH_POLL_SECONDS
        try:
            while not self.stopping.is_set():
                try:
                    claimed = webhook_dispatch(process.delay, limit=BATCH)
                except Exception:
                    logger.exception("inbox dispatcher: pass failed; again in %s s", interval)
                    connection.close()
                    claimed = []
                if len(claimed) < BATCH:  # a full batch: more may wait, look again at once
                    self.stopping.wait(interval)
        finally:
            connection.close()
