"""Orders and their audit timeline. Orders know nothing of how they are paid."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import RETURN_VALUE, FSMField, TransitionNotAllowed, transition

from orders.fields import AmountField, CurrencyField


class OrderStatus(models.TextChoices):
    CREATED = "created"
    PAYMENT_PENDING = "payment_pending"
    PAYMENT_FAILED = "payment_failed"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    CANCELLED = "cancelled"


S = OrderStatus
#: States in which the buyer may start (another) payment attempt.
PAYABLE_STATES = (S.CREATED, S.PAYMENT_PENDING, S.PAYMENT_FAILED)
#: States reached after the order was paid in full, before any refund or dispute.
FULFILMENT_STATES = (S.PAID, S.SHIPPED, S.DELIVERED, S.COMPLETED)
#: States an order can hold money in (and so be disputed, and return to after a dispute or a
#: failed refund).
RETURN_STATES = (
    S.PAYMENT_PENDING,
    S.PAYMENT_FAILED,
    *FULFILMENT_STATES,
    S.PARTIALLY_REFUNDED,
    S.CANCELLED,
)
#: States from which a refund of everything paid can finish.
MONEY_STATES = (*RETURN_STATES, S.DISPUTED)


class RefreshableFSMModel(models.Model):
    """Lets ``refresh_from_db`` reload protected FSM fields (assignment stays forbidden)."""

    class Meta:
        abstract = True

    def refresh_from_db(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        fields = kwargs.get("fields") or (args[1] if len(args) > 1 else None)
        for f in self._meta.concrete_fields:
            if isinstance(f, FSMField) and (fields is None or f.attname in fields):
                self.__dict__.pop(f.attname, None)
        super().refresh_from_db(*args, **kwargs)


class Order(RefreshableFSMModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders_bought"
    )
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders_sold"
    )
    amount = AmountField()
    currency = CurrencyField()
    description = models.CharField(max_length=500, blank=True)
    items = models.JSONField(default=list, blank=True)
    status = FSMField(default=S.CREATED, choices=S.choices, protected=True, db_index=True)
    status_before_dispute = models.CharField(max_length=32, blank=True, choices=S.choices)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["buyer", "-created_at"]),
            models.Index(fields=["seller", "-created_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(buyer=models.F("seller")), name="order_buyer_is_not_seller"
            ),
        ]

    def __str__(self) -> str:
        return f"Order {self.id} ({self.status})"

    # --- transitions: fields only; services save, audit and synchronise -----------------------
    @transition(field=status, source=[S.CREATED, S.PAYMENT_FAILED], target=S.PAYMENT_PENDING)
    def start_payment(self) -> None:
        pass

    @transition(field=status, source=S.PAYMENT_PENDING, target=S.PAYMENT_FAILED)
    def fail_payment(self) -> None:
        pass

    @transition(field=status, source=list(PAYABLE_STATES), target=S.PAID)
    def mark_paid(self) -> None:
        self.paid_at = timezone.now()

    @transition(field=status, source=[S.PAID, S.PARTIALLY_REFUNDED], target=S.SHIPPED)
    def ship(self) -> None:
        self.shipped_at = timezone.now()

    @transition(field=status, source=S.SHIPPED, target=S.DELIVERED)
    def deliver(self) -> None:
        self.delivered_at = timezone.now()

    @transition(
        field=status,
        source=[S.PAID, S.SHIPPED, S.DELIVERED, S.PARTIALLY_REFUNDED],
        target=S.COMPLETED,
    )
    def complete(self) -> None:
        self.completed_at = timezone.now()

    @transition(
        field=status,
        source=[S.PAYMENT_PENDING, S.PAYMENT_FAILED, S.PAID, S.DISPUTED],
        target=S.PARTIALLY_REFUNDED,
    )
    def refund_partially(self) -> None:
        """Part of the money went back before shipping (after it, the fulfilment state stays)."""
        self.status_before_dispute = ""

    @transition(field=status, source=list(MONEY_STATES), target=S.REFUNDED)
    def refund_fully(self) -> None:
        self.status_before_dispute = ""

    @transition(
        field=status,
        source=[S.PARTIALLY_REFUNDED, S.REFUNDED],
        target=RETURN_VALUE(*RETURN_STATES),
    )
    def restore_after_refund_failure(self, target: str) -> str:
        """A refund that looked done failed: the order goes back to what its payments say."""
        return self._return_to(target)

    @transition(field=status, source=list(RETURN_STATES), target=S.DISPUTED)
    def open_dispute(self) -> None:
        self.status_before_dispute = self.status

    @transition(field=status, source=S.DISPUTED, target=RETURN_VALUE(*RETURN_STATES))
    def close_dispute(self, target: str = "") -> str:
        """The dispute ended without the money going back: to ``target`` (what the payments
        say now), by default the state before the dispute."""
        target = self._return_to(target or self.status_before_dispute or S.PAID)
        self.status_before_dispute = ""
        return target

    def _return_to(self, target: str) -> str:
        if target not in RETURN_STATES:
            raise TransitionNotAllowed(f"Cannot return an order to {target}.", object=self)
        if target == S.COMPLETED and self.completed_at is None:
            self.completed_at = timezone.now()
        return target

    @transition(field=status, source=list(PAYABLE_STATES), target=S.CANCELLED)
    def cancel(self) -> None:
        self.cancelled_at = timezone.now()


class ActorType(models.TextChoices):
    USER = "user"
    ADMIN = "admin"
    WEBHOOK = "webhook"
    JOB = "job"
    SYSTEM = "system"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):  # type: ignore[no-untyped-def]
        raise AppendOnlyError("Audit events are append-only.")

    def delete(self):  # type: ignore[no-untyped-def]
        raise AppendOnlyError("Audit events are append-only.")


class AppendOnlyError(Exception):
    pass


class OrderPaymentEvent(models.Model):
    """One row per state change of an order, a payment, a refund or a review: the timeline.

    Names payments and refunds by id without a foreign key, so orders stay independent of
    payments. Append-only in code (save/delete raise) and, on PostgreSQL, by a trigger.
    """

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    payment_id = models.UUIDField(null=True, blank=True, db_index=True)
    refund_id = models.UUIDField(null=True, blank=True, db_index=True)
    entity = models.CharField(max_length=16)  # order, payment, refund, review
    action = models.CharField(max_length=64)  # the transition's name, or a note
    from_state = models.CharField(max_length=32, blank=True)
    to_state = models.CharField(max_length=32, blank=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    actor_label = models.CharField(max_length=128, blank=True)
    reference = models.CharField(
        max_length=255,
        blank=True,
        db_index=True,
        help_text="Request id or provider event id that caused it.",
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.entity}.{self.action} {self.from_state}->{self.to_state}"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.pk is not None and not self._state.adding:
            raise AppendOnlyError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AppendOnlyError("Audit events are append-only.")
