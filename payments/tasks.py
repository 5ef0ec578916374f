"""Celery tasks: each takes ids, reloads, and is safe to run twice."""

from __future__ import annotations

from celery import shared_task

from .webhooks import webhook_process


@shared_task(bind=True, max_retries=8, acks_late=True)
def process_webhook_event(self, event_id: int) -> None:  # type: ignore[no-untyped-def]
    from .webhooks import webhook_backoff

    try:
        webhook_process(event_id)
    except Exception as exc:
        if self.request.is_eager:
            return  # stored as failed with its error; the sweeper or a replay runs it again
        raise self.retry(
            exc=exc, countdown=webhook_backoff(self.request.retries + 1).total_seconds()
        ) from exc


from .chain_tasks import poll_chain, poll_chains  # noqa: E402, F401  (registers the chain tasks)
