"""Announcements that receipts, notifications and caches listen to. Sent on commit only."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)


def announce(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` after a commit: every receiver runs even if one fails (a cache that is
    down, a receiver's bug), and a failure is logged, never raised: the change is committed,
    so the request that made it must still answer its success (each effect has a sweeper)."""
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "a receiver of a committed change failed: %s",
                getattr(receiver, "__qualname__", receiver),
                exc_info=(type(result), result, result.__traceback__),
            )


#: A payment's status changed. kwargs: payment_id, order_id, from_state, to_state, actor_type.
payment_status_changed = Signal()
#: A refund's status changed. kwargs: refund_id, payment_id, order_id, from_state, to_state.
refund_status_changed = Signal()
#: Anything that the order's payment status shows changed. kwargs: order_id.
order_payments_changed = Signal()
#: A webhook was refused: no recognised signature header, or a bad or stale signature.
#: kwargs: provider ("" when no source matched), code, message.
webhook_signature_rejected = Signal()
#: Automatic retries of a transient failure are used up: the failure is final for the
#: automatic path (the buyer may still retry). kwargs: payment_id, order_id, attempts.
payment_retry_exhausted = Signal()
