"""Sending the payment emails: HTML and text, to buyer and seller, once per event and recipient.

A row in ``Notification`` is taken (unique on event key and recipient) and locked before the
email goes out and marked sent after, so a task that runs twice sends once. An email whose
send failed stays ``failed`` with its error and is sent by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from common.db import write_on_new_connection
from common.errors import ValidationFailed
from common.money import format_amount, get_currency, sub
from common.tasks import enqueue_on_commit
from notifications.events import NotificationEvent, notification_for_change
from notifications.models import Notification, NotificationKind
from orders.models import OrderPaymentEvent
from payments.links import payment_provider_reference
from payments.models import PaymentMethod, PaymentTransaction, Refund
from payments.providers.base import FailureKind
from payments.providers.registry import provider_for_method

SUBJECTS = {
    NotificationKind.PAYMENT_CONFIRMED: "Payment confirmed for order {order}",
    NotificationKind.PAYMENT_FAILED: "Payment failed for order {order}",
    NotificationKind.PAYMENT_REFUNDED: "Refund of {amount} {currency} for order {order}",
    NotificationKind.PAYMENT_DISPUTED: "Payment disputed for order {order}",
    NotificationKind.ESCROW_RELEASED: "Escrow released for order {order}",
}
#: Which currencies a method takes: card payments fiat, chain payments tokens and coins.
METHOD_CURRENCY_KIND = {
    PaymentMethod.FIAT: "fiat",
    PaymentMethod.CRYPTO: "crypto",
    PaymentMethod.ESCROW: "crypto",
}


@dataclass(frozen=True)
class Recipient:
    email: str
    role: str
    user: Any = None


def payment_retry_methods(payment: PaymentTransaction) -> list[str]:
    """The methods the buyer can retry the order with: configured, fit for the currency, and
    not the failed one when its failure is final (fraud, cancelled)."""
    kind = get_currency(payment.currency).kind
    final = payment.provider_data.get("failure_kind") == FailureKind.FINAL
    methods = []
    for method in PaymentMethod.values:
        if METHOD_CURRENCY_KIND.get(method) != kind or (final and method == payment.method):
            continue
        try:
            provider_for_method(method)
        except (ValidationFailed, ImportError):
            continue
        methods.append(method)
    methods.sort(key=lambda m: m != payment.method)
    return methods


def _recipients(payment: PaymentTransaction, kind: str) -> list[Recipient]:
    order = payment.order
    people = [Recipient(order.buyer.email, "buyer", order.buyer)]
    people.append(Recipient(order.seller.email, "seller", order.seller))
    if kind == NotificationKind.PAYMENT_DISPUTED:
        people += [Recipient(email, "operator") for email in settings.OPERATOR_EMAILS]
    seen: set[str] = set()
    unique = []
    for r in people:
        if r.email and r.email.lower() not in seen:
            seen.add(r.email.lower())
            unique.append(r)
    return unique


def _context(payment: PaymentTransaction, refund: Refund | None, kind: str) -> dict[str, Any]:
    cur = payment.currency
    reference, reference_url = payment_provider_reference(payment)
    if reference == payment.payment_intent_id:
        reference_url = ""  # Stripe's dashboard is for the platform's staff, not the parties
    context: dict[str, Any] = {
        "platform_name": settings.PLATFORM_NAME,
        "platform_url": settings.PLATFORM_URL,
        "kind": kind,
        "order": payment.order,
        "payment": payment,
        "method": payment.get_method_display(),
        "amount": format_amount(payment.amount, cur),
        "fee": format_amount(payment.fee_amount, cur),
        "net": format_amount(sub(payment.amount, payment.fee_amount), cur),
        "currency": cur,
        "reference": reference,
        "reference_url": reference_url,
        # the template ends the sentence itself: "... did not go through: <reason>."
        "failure_reason": (payment.failure_reason or "").strip().rstrip("."),
    }
    if refund is not None:
        context["refund"] = refund
        context["refund_amount"] = format_amount(refund.amount, cur)
        context["refunded_total"] = format_amount(payment.refunded_amount, cur)
    if kind == NotificationKind.PAYMENT_FAILED:
        context["retry_methods"] = [
            {"value": m, "label": PaymentMethod(m).label} for m in payment_retry_methods(payment)
        ]
    return context


#: A worker that claimed an email and has not recorded it sent within this long is presumed
#: dead: another may send it again (the one at-most-twice window; see docs/operations.md).
SEND_LEASE = timedelta(minutes=5)


def _message_id(row: Notification) -> str:
    """The same Message-ID for every attempt of one email, so a receiving server or client
    that deduplicates by it shows a resend once."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(" >") or "orderpay.local"
    return f"<notification-{row.pk}@{domain}>"


def _send_once(
    *,
    event_key: str,
    recipient: Recipient,
    kind: str,
    payment: PaymentTransaction,
    refund: Refund | None,
    subject: str,
    context: dict[str, Any],
) -> bool:
    """Send one email unless it was sent for this event already; True if sent now.

    The claim commits before the email leaves, and the email's result is recorded after, so
    no transaction is open while the mail server is talking: a dropped database connection
    can no longer undo the record of an email that went out (which sent it twice). A claim
    younger than SEND_LEASE keeps other workers off it."""
    now = timezone.now()
    with transaction.atomic():
        Notification.objects.bulk_create(
            [
                Notification(
                    event_key=event_key,
                    recipient=recipient.email,
                    user=recipient.user,
                    role=recipient.role,
                    kind=kind,
                    order_id=payment.order_id,
                    payment_id=payment.id,
                    refund_id=refund.id if refund else None,
                    subject=subject[:255],
                )
            ],
            ignore_conflicts=True,
        )
        row = Notification.objects.select_for_update().get(
            event_key=event_key, recipient=recipient.email
        )
        if row.status == Notification.Status.SENT:
            return False
        claimed = row.status == Notification.Status.SENDING and row.claimed_at is not None
        if claimed and now - row.claimed_at < SEND_LEASE:
            return False  # another worker has it
        row.attempts += 1
        row.status = Notification.Status.SENDING
        row.claimed_at = now
        row.save(update_fields=["attempts", "status", "claimed_at"])
    ctx = {**context, "role": recipient.role, "recipient": recipient}
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"emails/{kind}.txt", ctx),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient.email],
        headers={"Message-ID": _message_id(row)},
    )
    message.attach_alternative(render_to_string(f"emails/{kind}.html", ctx), "text/html")
    try:
        message.send()
    except Exception as exc:
        _record(
            row.pk,
            status=Notification.Status.FAILED,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            claimed_at=None,
        )
        raise
    _record(row.pk, status=Notification.Status.SENT, sent_at=timezone.now(), last_error="")
    return True


def _record(pk: int, **fields: Any) -> None:
    """Write what became of an email, on a new connection if the database dropped the old one
    while the mail server talked: the email is out, and a lost record would leave its row
    claimed (no one sends it, or anyone else, until SEND_LEASE has passed)."""
    write_on_new_connection(
        lambda: Notification.objects.filter(pk=pk).update(**fields),
        what=f"notification {pk} {fields['status']}",
    )


def notification_send(
    *, kind: str, event_key: str, payment_id: UUID | str, refund_id: UUID | str | None = None
) -> int:
    """Email the buyer and seller (and operators, for disputes) about one event; returns how
    many emails went out now (0 when every recipient had it already)."""
    if kind not in NotificationKind.values:
        raise ValidationFailed(f"Unknown notification {kind!r}.", code="unknown_notification")
    payment = PaymentTransaction.objects.select_related("order__buyer", "order__seller").get(
        pk=payment_id
    )
    refund = Refund.objects.get(pk=refund_id) if refund_id else None
    context = _context(payment, refund, kind)
    subject = SUBJECTS[NotificationKind(kind)].format(
        order=str(payment.order_id)[:8],
        amount=context.get("refund_amount", context["amount"]),
        currency=payment.currency,
    )
    subject = f"[{settings.PLATFORM_NAME}] {subject}"
    sent = 0
    for recipient in _recipients(payment, kind):
        sent += _send_once(
            event_key=event_key,
            recipient=recipient,
            kind=kind,
            payment=payment,
            refund=refund,
            subject=subject,
            context=context,
        )
    return sent


def notifications_missing(
    *, now: datetime | None = None, after: timedelta | None = None, window: timedelta | None = None
) -> list[NotificationEvent]:
    """Events of the audit trail (older than ``after``, within ``window``) whose emails have
    not all been sent: their enqueue was lost, or their send failed."""
    now = now or timezone.now()
    after = settings.NOTIFICATION_SWEEP_AFTER if after is None else after
    window = settings.NOTIFICATION_SWEEP_WINDOW if window is None else window
    rows = (
        OrderPaymentEvent.objects.filter(
            entity__in=("payment", "refund"),
            created_at__gte=now - window,
            created_at__lte=now - after,
            payment_id__isnull=False,
        )
        .order_by("created_at", "id")
        .values_list("entity", "payment_id", "refund_id", "from_state", "to_state")
    )
    methods = dict(
        PaymentTransaction.objects.filter(
            pk__in={row[1] for row in rows if row[0] == "payment"}
        ).values_list("id", "method")
    )
    disputes: dict[UUID, int] = {}
    events: dict[str, NotificationEvent] = {}
    for entity, payment_id, refund_id, from_state, to_state in rows:
        if entity == "payment" and to_state == "disputed":
            disputes[payment_id] = disputes.get(payment_id, 0) + 1
        event = notification_for_change(
            entity=entity,
            payment_id=payment_id,
            refund_id=refund_id,
            from_state=from_state,
            to_state=to_state,
            method=methods.get(payment_id, ""),
            dispute_number=disputes.get(payment_id, 1),
        )
        if event is not None:
            events[event.event_key] = event
    if not events:
        return []
    sent: dict[str, set[str]] = {}
    for key, recipient in Notification.objects.filter(
        event_key__in=events, status=Notification.Status.SENT
    ).values_list("event_key", "recipient"):
        sent.setdefault(key, set()).add(recipient.lower())
    payments = PaymentTransaction.objects.select_related("order__buyer", "order__seller").in_bulk(
        {e.payment_id for e in events.values()}
    )
    missing = []
    for key, event in events.items():
        payment = payments.get(event.payment_id)
        if payment is None:
            continue
        wanted = {r.email.lower() for r in _recipients(payment, event.kind)}
        if wanted - sent.get(key, set()):
            missing.append(event)
    return missing


def notification_enqueue(event: NotificationEvent | None) -> None:
    """Send the event's emails from a task once the transaction commits (robust: a lost
    enqueue is logged and found by ``notifications.sweep_unsent``; it never breaks a payment)."""
    if event is None:
        return
    enqueue_on_commit(
        "notifications.tasks.send_payment_notification",
        str(event.kind),
        event.event_key,
        str(event.payment_id),
        str(event.refund_id) if event.refund_id else None,
    )
