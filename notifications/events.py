"""Which change of a payment or refund is announced by which email, and under which key.

One mapping serves both the signal receivers (on commit) and the sweeper, which reads the
audit trail to find the emails whose enqueue was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from notifications.models import NotificationKind as K
from payments.models import PaymentMethod, PaymentStatus, RefundStatus


@dataclass(frozen=True)
class NotificationEvent:
    kind: str
    event_key: str
    payment_id: UUID
    refund_id: UUID | None = None


def notification_for_change(
    *,
    entity: str,
    payment_id: UUID,
    to_state: str,
    from_state: str = "",
    refund_id: UUID | None = None,
    method: str = "",
    dispute_number: int = 1,
) -> NotificationEvent | None:
    """The email a change calls for, if any. ``dispute_number`` counts the payment's dispute
    openings up to this one (a payment may be disputed more than once)."""
    if entity == "refund":
        if to_state == RefundStatus.SUCCEEDED and refund_id is not None:
            key = f"{K.PAYMENT_REFUNDED}:{refund_id}"
            return NotificationEvent(K.PAYMENT_REFUNDED, key, payment_id, refund_id)
        return None
    if entity != "payment":
        return None
    if to_state == PaymentStatus.CONFIRMED and from_state != PaymentStatus.DISPUTED:
        kind = K.PAYMENT_CONFIRMED
    elif to_state == PaymentStatus.FAILED:
        kind = K.PAYMENT_FAILED
    elif to_state == PaymentStatus.DISPUTED:
        key = f"{K.PAYMENT_DISPUTED}:{payment_id}:{dispute_number}"
        return NotificationEvent(K.PAYMENT_DISPUTED, key, payment_id)
    elif to_state == PaymentStatus.COMPLETED and method == PaymentMethod.ESCROW:
        kind = K.ESCROW_RELEASED
    else:
        return None
    return NotificationEvent(kind, f"{kind}:{payment_id}", payment_id)
