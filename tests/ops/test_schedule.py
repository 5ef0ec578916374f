"""The beat schedule: installed once, kept as staff edit it, every task registered."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.celery_app import app
from ops.schedule import PREFIX, schedule, scheduled_task_names

pytestmark = pytest.mark.django_db
CHAINS = [{"chain_id": 31337, "rpc_url": "http://127.0.0.1:8545"}, {"chain_id": 1, "rpc_url": "x"}]


def rows() -> list[tuple]:
    return sorted(
        PeriodicTask.objects.filter(name__startswith=PREFIX).values_list(
            "name", "task", "kwargs", "interval__every", "enabled"
        )
    )


@override_settings(CHAINS=CHAINS)
def test_setup_periodic_tasks_installs_the_schedule_once():
    call_command("setup_periodic_tasks")
    first = rows()
    intervals = IntervalSchedule.objects.count()
    call_command("setup_periodic_tasks")
    assert rows() == first
    assert IntervalSchedule.objects.count() == intervals
    assert len(first) == len(schedule()) == 13  # two chains and eleven jobs
    by_name = {r[0]: r for r in first}
    assert by_name["orderpay: poll chain 31337"][1:4] == (
        "payments.poll_chain",
        '{"chain_id": 31337}',
        5,
    )
    assert {r[1] for r in first} == scheduled_task_names()


@override_settings(CHAINS=CHAINS)
def test_staff_edits_survive_a_rerun_and_reset_restores_them():
    call_command("setup_periodic_tasks")
    task = PeriodicTask.objects.get(name="orderpay: retry failed payments")
    task.interval = IntervalSchedule.objects.create(every=300, period="seconds")
    task.enabled = False
    task.save()
    call_command("setup_periodic_tasks")
    task.refresh_from_db()
    assert (task.interval.every, task.enabled) == (300, False)
    call_command("setup_periodic_tasks", "--reset")
    task.refresh_from_db()
    assert (task.interval.every, task.enabled) == (60, True)


def test_a_chain_removed_from_settings_loses_its_polling_entry():
    with override_settings(CHAINS=CHAINS):
        call_command("setup_periodic_tasks")
    with override_settings(CHAINS=CHAINS[:1]):
        call_command("setup_periodic_tasks")
    names = {r[0] for r in rows()}
    assert "orderpay: poll chain 31337" in names and "orderpay: poll chain 1" not in names
    assert PeriodicTask.objects.filter(name="orderpay: poll chain 1").count() == 0


def registered() -> set[str]:
    app.loader.import_default_modules()
    return set(app.tasks)


def test_every_scheduled_task_is_registered():
    assert scheduled_task_names() - registered() == set()
    assert "payments.sweep_pending_refunds" in scheduled_task_names()


def test_beat_reads_the_database_schedule():
    from django.utils.module_loading import import_string
    from django_celery_beat.schedulers import DatabaseScheduler

    scheduler = import_string(settings.CELERY_BEAT_SCHEDULER.replace(":", "."))
    assert issubclass(scheduler, DatabaseScheduler)


@override_settings(CHAINS=CHAINS, CHAIN_POLL_SECONDS=12)
def test_chain_poll_interval_comes_from_chain_poll_seconds():
    call_command("setup_periodic_tasks")
    intervals = {r[0]: r[3] for r in rows()}
    assert intervals["orderpay: poll chain 31337"] == 12
    assert intervals["orderpay: sweep webhook events"] == 60
