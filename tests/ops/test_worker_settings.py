"""The worker invariants of ARCHITECTURE.md section 5, and tasks that take ids."""

from __future__ import annotations

import inspect

from django.conf import settings

from config.celery_app import app
from ops.schedule import scheduled_task_names


def test_worker_settings_survive_a_lost_worker():
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT < visibility
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.worker_hijack_root_logger is False  # Django's logging (redaction) applies


def test_scheduled_tasks_of_this_branch_take_only_ids_and_ack_late():
    app.loader.import_default_modules()
    for name in sorted(scheduled_task_names() & set(app.tasks)):
        task = app.tasks[name]
        assert task.acks_late, name
        params = inspect.signature(task.run).parameters
        assert all(p.endswith("_id") for p in params), (name, list(params))
