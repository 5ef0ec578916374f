"""Operations records: security audit entries, alert incidents and task counters."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class SecurityEvent(models.Model):
    """A security audit entry (append-only; read-only in admin)."""

    class Kind(models.TextChoices):
        BAD_WEBHOOK_SIGNATURE = "bad_webhook_signature"
        PERMISSION_DENIED = "permission_denied"
        STAFF_LOGIN_FAILED = "staff_login_failed"

    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    method = models.CharField(max_length=8, blank=True)
    path = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=128, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    # Aggregation: one row per kind, source (client address, else username) and minute; a
    # flood of refused requests adds to ``count`` instead of writing a row each.
    source = models.CharField(max_length=160, blank=True)
    minute = models.DateTimeField(null=True, blank=True, db_index=True)
    count = models.PositiveIntegerField(default=1)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "source", "minute"], name="security_event_one_row_per_minute"
            )
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind} {self.username or self.path}"


class Incident(models.Model):
    """One alert condition from the moment it crosses its threshold until it clears; the
    operators get one email per incident (at most one open incident per key)."""

    key = models.CharField(max_length=100, db_index=True)
    title = models.CharField(max_length=200)
    details = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    notified = models.BooleanField(default=False)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=models.Q(resolved_at__isnull=True),
                name="incident_one_open_per_key",
            ),
        ]

    def __str__(self) -> str:
        state = "resolved" if self.resolved_at else "open"
        return f"{self.key} ({state})"


class TaskCounter(models.Model):
    """Task retries and failures counted in the database, so that every worker process on
    every host adds to one number and /metrics serves it from any web process."""

    task = models.CharField(max_length=200)
    event = models.CharField(max_length=16)  # "retry" | "failure" | "success" (scheduled jobs)
    count = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "event"], name="task_counter_once"),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.event}: {self.count}"
