"""Provider webhooks: verify -> store once in the inbox -> acknowledge; a task processes.

Each source (Stripe, chain notifications) is a class named in ``settings.WEBHOOK_SOURCES``
that recognises its requests by header, verifies the signature and later processes the
stored event. Nothing is stored without a valid signature.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from common.errors import ValidationFailed
from common.jsonbody import json_storage_problem
from common.tasks import enqueue_on_commit
from payments.models import WebhookEvent
from payments.signals import webhook_signature_rejected

MAX_BODY_BYTES = 512 * 1024


class WebhookSignatureError(ValidationFailed):
    code = "invalid_signature"


@dataclass(frozen=True)
class VerifiedEvent:
    provider: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    #: The object whose re-read settles the event (see ``WebhookEvent.object_key``), or "".
    object_key: str = ""


class WebhookSource(Protocol):
    provider: str

    def matches(self, headers: Mapping[str, str]) -> bool: ...

    def verify(self, body: bytes, headers: Mapping[str, str]) -> VerifiedEvent:
        """Return the event if the signature is valid and fresh; else WebhookSignatureError."""
        ...

    def process(self, event: WebhookEvent) -> None:
        """Apply a stored event (runs in a task; must be safe to run twice)."""
        ...


@cache
def webhook_sources() -> tuple[WebhookSource, ...]:
    return tuple(import_string(path)() for path in settings.WEBHOOK_SOURCES)


def webhook_source_for(provider: str) -> WebhookSource:
    for source in webhook_sources():
        if source.provider == provider:
            return source
    raise LookupError(f"No webhook source for {provider!r}.")


#: Field names whose values the inbox never stores (a PaymentIntent's ``client_secret``, any
#: ``*_secret``, ``password``, ``token`` field): the processing re-reads the object anyway.
SECRET_FIELD = re.compile(r"(^|_)(secret|password|passwd|token|api_key|private_key)$", re.I)
REDACTED = "[removed]"


def strip_secrets(value: Any) -> Any:
    """``value`` with the value of every secret-named field replaced, at any depth."""
    if isinstance(value, dict):
        return {
            k: REDACTED if SECRET_FIELD.search(str(k)) and v not in (None, "") else strip_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [strip_secrets(v) for v in value]
    return value


def webhook_receive(body: bytes, headers: Mapping[str, str]) -> tuple[WebhookEvent, bool]:
    """Verify and store an incoming webhook; return (event, created). A duplicate is stored
    once and not processed again."""
    if len(body) > MAX_BODY_BYTES:
        raise ValidationFailed("Webhook body too large.", code="payload_too_large")
    source = next((s for s in webhook_sources() if s.matches(headers)), None)
    try:
        if source is None:
            raise WebhookSignatureError(
                "No recognised webhook signature header.", code="missing_signature"
            )
        verified = source.verify(body, headers)
    except WebhookSignatureError as exc:
        webhook_signature_rejected.send(
            sender=WebhookEvent,
            provider=getattr(source, "provider", ""),
            code=exc.code,
            message=exc.message,
        )
        raise
    problem = json_storage_problem(verified.payload)
    if problem:
        raise ValidationFailed(f"The event cannot be stored: {problem}.", code="invalid_payload")
    row = {
        "provider": verified.provider,
        "event_id": verified.event_id[:255],
        "event_type": verified.event_type[:128],
        "payload": strip_secrets(verified.payload),
        "object_key": verified.object_key[:255],
    }
    # The request runs in autocommit: one INSERT, no BEGIN/COMMIT round trips. Inside a
    # caller's transaction a savepoint keeps that transaction usable after a duplicate.
    in_transaction = transaction.get_connection().in_atomic_block
    try:
        with transaction.atomic() if in_transaction else contextlib.nullcontext():
            event = WebhookEvent.objects.create(**row)
    except IntegrityError:
        return WebhookEvent.objects.get(
            provider=verified.provider, event_id=verified.event_id[:255]
        ), False
    if settings.WEBHOOK_DISPATCH == "request":
        # robust: the event is stored; a lost enqueue is found by the sweeper
        enqueue_on_commit("payments.tasks.process_webhook_event", event.id)
    return event, True


def webhook_dispatch(send: Callable[[int], object], *, limit: int = 200) -> list[int]:
    """Hand new inbox events to the workers ("inbox" dispatch): claim up to ``limit`` events
    received and not yet dispatched, oldest first, mark them dispatched and ``send`` (enqueue
    the processing of) the newest event of each object and every event without one, in one
    transaction: the newest's re-read settles its older siblings (``webhook_process``), so
    they need no task. Dispatchers side by side take different rows (SKIP LOCKED). A failed
    send rolls the claim back, so the rows are found again; a send whose commit is lost is
    sent again later, which processing (under the event's row lock, skipping what is done)
    makes harmless. Returns the ids claimed."""
    with transaction.atomic():
        claimed = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookEvent.Status.RECEIVED, dispatched_at__isnull=True)
            .order_by("id")
            .values_list("id", "object_key")[:limit]
        )
        if not claimed:
            return []
        ids = [pk for pk, _key in claimed]
        WebhookEvent.objects.filter(pk__in=ids).update(dispatched_at=timezone.now())
        newest = {key: pk for pk, key in claimed if key}  # ids ascend: the last one stays
        for event_id in sorted([pk for pk, key in claimed if not key] + list(newest.values())):
            send(event_id)
    return ids


def webhook_backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 10 * 2 ** max(0, attempts - 1)))


def webhook_process(event_id: int) -> WebhookEvent | None:
    """Process one stored event under its row lock; a failure keeps the error and attempt
    count and schedules the next attempt, then re-raises for the task's retry."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.status in (
            WebhookEvent.Status.PROCESSED,
            WebhookEvent.Status.IGNORED,
        ):
            return event
        event.attempts += 1
        # Events about the same object stored before the re-read below: that re-read settles
        # them too (read now, before it; ids, not clocks, so hosts' clocks cannot matter).
        siblings = _open_siblings(event)
        try:
            with transaction.atomic():
                webhook_source_for(event.provider).process(event)
        except Exception as exc:
            event.status = WebhookEvent.Status.FAILED
            event.last_error = f"{type(exc).__name__}: {exc}"[:4000]
            event.next_attempt_at = timezone.now() + webhook_backoff(event.attempts)
            event.save(update_fields=["status", "last_error", "attempts", "next_attempt_at"])
            failure = exc
        else:
            event.status = WebhookEvent.Status.PROCESSED
            event.processed_at = timezone.now()
            event.last_error = ""
            event.next_attempt_at = None
            event.save(
                update_fields=[
                    "status",
                    "processed_at",
                    "last_error",
                    "attempts",
                    "next_attempt_at",
                ]
            )
            _cover(event, siblings)
            return event
    raise failure


#: At most this many other events are settled by one re-read (the rest by their own).
COVER_LIMIT = 500


def _open_siblings(event: WebhookEvent) -> list[int]:
    if not event.object_key:
        return []
    return list(
        WebhookEvent.objects.filter(
            provider=event.provider,
            object_key=event.object_key,
            status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED),
        )
        .exclude(pk=event.pk)
        .values_list("pk", flat=True)[:COVER_LIMIT]
    )


def _cover(event: WebhookEvent, siblings: list[int]) -> int:
    """Mark ``siblings`` (stored before ``event``'s re-read) processed by it, except those a
    worker is processing right now (SKIP LOCKED: they finish on their own)."""
    if not siblings:
        return 0
    free = list(
        WebhookEvent.objects.select_for_update(skip_locked=True)
        .filter(
            pk__in=siblings,
            status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED),
        )
        .values_list("pk", flat=True)
    )
    return WebhookEvent.objects.filter(pk__in=free).update(
        status=WebhookEvent.Status.PROCESSED,
        processed_at=event.processed_at,
        last_error="",
        next_attempt_at=None,
        covered_by=event,
    )
