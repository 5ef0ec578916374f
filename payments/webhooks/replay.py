"""Running stored webhook events again, now and in this process (``replay_webhook_events``);
the beat sweeper (``payments.sweep_webhook_events``) picks the same events through
``payments.jobs.webhook_events_to_sweep``."""

from __future__ import annotations

from collections.abc import Iterable

from payments.webhooks.inbox import webhook_process


def webhook_replay(event_ids: Iterable[int]) -> dict[int, str]:
    """Process each event once more (under its row lock); returns {id: status or error}."""
    outcome: dict[int, str] = {}
    for event_id in event_ids:
        try:
            event = webhook_process(event_id)
        except Exception as exc:
            outcome[event_id] = f"failed: {type(exc).__name__}: {exc}"
        else:
            outcome[event_id] = event.status if event is not None else "missing"
    return outcome
