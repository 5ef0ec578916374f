"""Signal receivers: security audit, task counters and the log context of Celery tasks."""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import signals as celery_signals
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.db.models import F
from django.dispatch import receiver
from django.utils import timezone

from common.logcontext import order_id_var, payment_id_var, request_id_var
from ops.models import SecurityEvent, TaskCounter
from ops.security import security_event_record
from payments.signals import webhook_signature_rejected

logger = logging.getLogger(__name__)


@receiver(webhook_signature_rejected, dispatch_uid="ops_bad_webhook_signature")
def _on_bad_webhook_signature(
    sender: Any, provider: str = "", code: str = "", message: str = "", **kwargs: Any
) -> None:
    security_event_record(
        kind=SecurityEvent.Kind.BAD_WEBHOOK_SIGNATURE,
        details={"provider": provider, "code": code, "message": message[:500]},
    )


@receiver(user_login_failed, dispatch_uid="ops_staff_login_failed")
def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    """A failed login to the admin, or for a staff account anywhere, is a security event.
    ``credentials`` arrive with the password already masked by Django; only the username
    is kept."""
    User = get_user_model()
    username = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    on_admin = request is not None and request.path.startswith("/admin")
    if not (on_admin or (user is not None and user.is_staff)):
        return
    security_event_record(
        kind=SecurityEvent.Kind.STAFF_LOGIN_FAILED,
        request=request,
        user=user,
        username=username,
        details={"known_user": user is not None},
    )


# --- Celery ---------------------------------------------------------------------------------
def task_counter_add(task: str, event: str) -> None:
    """Add one to a counter (safe under concurrency: an UPDATE ... SET count = count + 1)."""
    with transaction.atomic():
        updated = TaskCounter.objects.filter(task=task, event=event).update(
            count=F("count") + 1, updated_at=timezone.now()
        )
        if not updated:
            counter, created = TaskCounter.objects.get_or_create(
                task=task, event=event, defaults={"count": 1}
            )
            if not created:
                TaskCounter.objects.filter(pk=counter.pk).update(
                    count=F("count") + 1, updated_at=timezone.now()
                )


def _task_name(sender: Any) -> str:
    return str(getattr(sender, "name", sender) or "unknown")[:200]


@celery_signals.task_retry.connect(dispatch_uid="ops_task_retry")
def _on_task_retry(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    name = _task_name(sender) if sender is not None else str(getattr(request, "task", ""))
    try:
        task_counter_add(name, "retry")
    except Exception:  # a metrics write never breaks the task's own handling
        logger.exception("could not count the retry of %s", name)


@celery_signals.task_success.connect(dispatch_uid="ops_job_success")
def _on_job_success(sender: Any = None, **kwargs: Any) -> None:
    """A scheduled job's runs are counted (its row's ``updated_at`` is its last success, which
    /metrics serves); other tasks are not, to keep a row write off every webhook's path."""
    name = _task_name(sender)
    if name not in _scheduled_jobs():
        return
    try:
        task_counter_add(name, "success")
    except Exception:
        logger.exception("could not count the success of %s", name)


@functools.cache
def _scheduled_jobs() -> frozenset[str]:
    from ops.schedule import scheduled_task_names

    return frozenset(scheduled_task_names())


@celery_signals.task_failure.connect(dispatch_uid="ops_task_failure")
def _on_task_failure(sender: Any = None, **kwargs: Any) -> None:
    name = _task_name(sender)
    try:
        task_counter_add(name, "failure")
    except Exception:
        logger.exception("could not count the failure of %s", name)


_TASK_TOKENS: dict[str, list[Any]] = {}


@celery_signals.task_prerun.connect(dispatch_uid="ops_task_log_context")
def _on_task_prerun(
    task_id: str = "", task: Any = None, kwargs: dict | None = None, **extra: Any
) -> None:
    """A task's log lines carry its id as request id, and the order/payment it works on."""
    kwargs = kwargs or {}
    # an eager task inside a request keeps the request's id; a worker task uses its own id
    tokens = [request_id_var.set(request_id_var.get() or task_id or "")]
    tokens.append(order_id_var.set(str(kwargs.get("order_id") or "")))
    tokens.append(payment_id_var.set(str(kwargs.get("payment_id") or "")))
    _TASK_TOKENS[task_id] = tokens


@celery_signals.task_postrun.connect(dispatch_uid="ops_task_log_context_end")
def _on_task_postrun(task_id: str = "", **extra: Any) -> None:
    tokens = _TASK_TOKENS.pop(task_id, None)
    if tokens:
        for var, token in zip(
            (payment_id_var, order_id_var, request_id_var), reversed(tokens), strict=True
        ):
            try:
                var.reset(token)
            except ValueError:  # set in another context (eager tasks inside a request)
                var.set("")
