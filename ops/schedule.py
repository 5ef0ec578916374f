"""The beat schedule, installed into django-celery-beat's tables by
``python manage.py setup_periodic_tasks`` (idempotent) and editable by staff in admin.

Entries are named ``orderpay: ...``; that prefix marks the rows the command owns. The code owns
each entry's task and arguments; staff own its interval and whether it is enabled (a second
run keeps what they set, unless ``--reset``). Per-chain entries follow ``settings.CHAINS``:
one entry per chain, removed when the chain leaves the settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from ops.health import configured_chains

PREFIX = "orderpay: "


@dataclass(frozen=True)
class Job:
    name: str
    task: str
    every_seconds: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def full_name(self) -> str:
        return PREFIX + self.name


def schedule() -> list[Job]:
    jobs = [
        Job(
            f"poll chain {chain['chain_id']}",
            "payments.poll_chain",
            settings.CHAIN_POLL_SECONDS,
            {"chain_id": chain["chain_id"]},
            "One poll pass of one chain (the monitor holds an advisory lock per chain).",
        )
        for chain in configured_chains()
    ]
    jobs += [
        Job(
            "send deposit follow-ups",
            "payments.send_deposit_followups",
            30,
            description="Sweep paid deposit addresses and send overpayments back, once each.",
        ),
        Job(
            "sweep webhook events",
            "payments.sweep_webhook_events",
            60,
            description="Re-enqueue inbox events not processed in time and failed ones now due.",
        ),
        Job(
            "retry failed payments",
            "payments.retry_failed_payments",
            60,
            description="Reconcile unknown outcomes, then retry transient failures with backoff.",
        ),
        Job(
            "expire stale payments",
            "payments.expire_stale_payments",
            60,
            description="Close pending payments past expires_at (with the provider first).",
        ),
        Job(
            "sweep pending refunds",
            "payments.sweep_pending_refunds",
            300,
            description="Reconcile with the provider, or send, refunds left pending unsent.",
        ),
        Job(
            "reconcile stripe",
            "payments.reconcile_stripe",
            300,
            description="Compare open card payments with Stripe's PaymentIntents.",
        ),
        Job(
            "sweep missing receipts",
            "receipts.sweep_missing_receipts",
            300,
            description="Issue receipts for payments that took money and have none.",
        ),
        Job(
            "sweep unsent notifications",
            "notifications.sweep_unsent",
            300,
            description="Send emails whose on-commit send was lost or failed.",
        ),
        Job(
            "cleanup idempotency keys",
            "payments.cleanup_idempotency_keys",
            3600,
            description="Delete idempotency keys past their retention (at least 24 hours).",
        ),
        Job(
            "prune security events",
            "ops.prune_security_events",
            86400,
            description="Delete security events past SECURITY_EVENT_RETENTION_DAYS.",
        ),
        Job(
            "check alerts",
            "ops.check_alerts",
            60,
            description="Open or resolve alert incidents; email the operators once per incident.",
        ),
    ]
    return jobs


def scheduled_task_names() -> set[str]:
    """Every task name the schedule can name (chain polling included with or without chains)."""
    return {job.task for job in schedule()} | {"payments.poll_chain"}


@transaction.atomic
def install_schedule(*, reset: bool = False) -> dict[str, list[str]]:
    """Create or update the schedule's rows; never duplicates (rows are keyed by their unique
    name). Returns the names created, updated and removed."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    created, updated, removed = [], [], []
    wanted = schedule()
    for job in wanted:
        interval = IntervalSchedule.objects.filter(
            every=job.every_seconds, period=IntervalSchedule.SECONDS
        ).first() or IntervalSchedule.objects.create(
            every=job.every_seconds, period=IntervalSchedule.SECONDS
        )
        kwargs = json.dumps(job.kwargs, sort_keys=True)
        task = PeriodicTask.objects.select_for_update().filter(name=job.full_name).first()
        if task is None:
            PeriodicTask.objects.create(
                name=job.full_name,
                task=job.task,
                interval=interval,
                kwargs=kwargs,
                description=job.description,
                enabled=True,
            )
            created.append(job.full_name)
            continue
        changes: dict[str, Any] = {"task": job.task, "kwargs": kwargs, "args": "[]"}
        changes["description"] = job.description
        if reset:
            changes.update(interval=interval, crontab=None, solar=None, clocked=None, enabled=True)
        if any(getattr(task, k) != v for k, v in changes.items()):
            for k, v in changes.items():
                setattr(task, k, v)
            task.save()
            updated.append(job.full_name)
    names = {job.full_name for job in wanted}
    for task in PeriodicTask.objects.filter(name__startswith=PREFIX).exclude(name__in=names):
        removed.append(task.name)
        task.delete()
    return {"created": created, "updated": updated, "removed": removed}
