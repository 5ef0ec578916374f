"""Enqueueing a Celery task after the current transaction commits, by the task's registered name.

Services enqueue by name so that a module never imports the task module that calls it back (the
tasks of an app are its entry points and sit above its services); each app's ``ready()`` imports
its ``tasks`` module, so every task is registered before a request or a worker runs. The task
object itself is used, so eager mode (tests) and the task's own options apply.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(name: str, *args: Any, robust: bool = True) -> None:
    """Send task ``name`` with ``args`` once the transaction commits (at once outside one).

    ``robust`` (the default): a broker that cannot take the message is logged, not raised, so
    a request whose data committed still answers its success; every enqueue has a sweeper job
    that finds the work again."""

    def send() -> None:
        current_app.tasks[name].delay(*args)

    transaction.on_commit(send, robust=robust)
