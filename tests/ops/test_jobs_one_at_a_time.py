"""A scheduled job runs once at a time across every worker: two beats, or a slow run meeting
the next tick, ran two Stripe reconciliations at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from common.locks import try_lock
from ops.schedule import schedule

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_that_finds_another_under_way_is_skipped(monkeypatch):
    from payments import tasks

    calls: list[int] = []
    monkeypatch.setattr(tasks, "reconcile_stripe", lambda: calls.append(1) or [])
    held, release = threading.Event(), threading.Event()

    def other_worker() -> None:  # its own database connection, as another process has
        with try_lock("job:payments.reconcile_stripe") as acquired:
            assert acquired
            held.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert held.wait(10)
    try:
        assert tasks.reconcile_stripe_task() is None and calls == []
    finally:
        release.set()
        thread.join(10)
    assert tasks.reconcile_stripe_task() == 0 and calls == [1]


def test_every_scheduled_job_but_the_chain_poll_is_guarded():
    """The chain poll holds its own per-chain lock inside; every other job holds its name."""
    from celery import current_app

    current_app.loader.import_default_modules()
    for job in schedule():
        if job.task == "payments.poll_chain":
            continue
        run = current_app.tasks[job.task].run
        assert getattr(run, "__wrapped__", None) is not None, job.task
