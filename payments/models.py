"""Payments, refunds, fee rules and the reliability tables (webhook inbox, idempotency keys,
chain cursors)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import RETURN_VALUE, FSMField, transition

from common.money import amount_at_decimals, sub
from orders.fields import AmountField, BaseUnitsField, CurrencyField
from orders.models import Order, RefreshableFSMModel


class PaymentMethod(models.TextChoices):
    CRYPTO = "crypto", "Crypto"
    FIAT = "fiat", "Card"
    ESCROW = "escrow", "Escrow"


class PaymentStatus(models.TextChoices):
    PENDING = "pending"  # created; waiting for the payer or the provider
    #: less than the amount arrived at the payment's deposit address; waiting for the rest
    PARTIALLY_PAID = "partially_paid"
    PROCESSING = "processing"  # seen by the provider or on chain; not final yet
    UNKNOWN = "unknown"  # a provider call timed out: outcome unknown until reconciled
    CONFIRMED = "confirmed"  # final: funds received (or held in escrow)
    COMPLETED = "completed"  # settled to the seller (escrow released, order completed)
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


P = PaymentStatus
OPEN_STATES = (P.PENDING, P.PROCESSING, P.UNKNOWN, P.PARTIALLY_PAID)
#: States in which the payment's amount counts as paid.
PAID_STATES = (P.CONFIRMED, P.COMPLETED, P.PARTIALLY_REFUNDED, P.REFUNDED, P.DISPUTED)
#: States from which money can be refunded.
REFUNDABLE_STATES = (P.CONFIRMED, P.COMPLETED, P.PARTIALLY_REFUNDED, P.DISPUTED)
UNSUCCESSFUL_STATES = (P.FAILED, P.CANCELLED, P.EXPIRED)


class ReviewStatus(models.TextChoices):
    NONE = "none"
    FLAGGED = "flagged"
    APPROVED = "approved"
    REJECTED = "rejected"


class FeeRule(models.Model):
    """A versioned fee rule for a payment method, optionally for one currency.

    Rules are never edited in place: a change creates the next version and deactivates the
    previous one, so every payment can name the exact rule it used.
    """

    method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    currency = models.CharField(
        max_length=8,
        blank=True,
        help_text="Blank: the method's rule for any currency (percentage only).",
    )
    version = models.PositiveIntegerField(default=1)
    percentage = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        default=Decimal("0"),
        help_text="Percent of the amount, e.g. 2.9000.",
    )
    fixed_amount = AmountField(default=Decimal("0"))
    minimum_fee = AmountField(null=True, blank=True)
    maximum_fee = AmountField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["method", "currency", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["method", "currency", "version"], name="fee_rule_version_unique"
            ),
            models.UniqueConstraint(
                fields=["method", "currency"],
                condition=models.Q(is_active=True),
                name="fee_rule_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method}/{self.currency or '*'} v{self.version}"


class PaymentTransaction(RefreshableFSMModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments")
    method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    provider = models.CharField(max_length=32)
    status = FSMField(default=P.PENDING, choices=P.choices, protected=True, db_index=True)
    status_before_dispute = models.CharField(max_length=32, blank=True)
    amount = AmountField()
    currency = CurrencyField()
    fee_amount = AmountField(default=Decimal("0"))
    fee_rule = models.ForeignKey(
        FeeRule, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    #: Sum of the non-failed refunds, kept under the payment's row lock (and, on PostgreSQL,
    #: checked by the database never to exceed ``amount``).
    refunded_amount = AmountField(default=Decimal("0"))
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="retries"
    )

    # Card (Stripe)
    payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # Chain (direct transfer and escrow)
    chain_id = models.PositiveBigIntegerField(null=True, blank=True)
    token_address = models.CharField(max_length=42, blank=True)
    amount_base_units = BaseUnitsField(null=True, blank=True)
    pay_to_address = models.CharField(max_length=42, blank=True)
    transaction_hash = models.CharField(max_length=66, null=True, blank=True)
    sender_address = models.CharField(max_length=42, blank=True)
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=66, blank=True)
    confirmations = models.PositiveIntegerField(default=0)
    required_confirmations = models.PositiveIntegerField(default=0)
    gas_used = BaseUnitsField(null=True, blank=True)
    effective_gas_price = BaseUnitsField(null=True, blank=True)
    escrow_id = models.CharField(max_length=66, null=True, blank=True, unique=True)
    #: the bytes32 id a Payments-contract intent names (crypto payments bound on chain; empty
    #: for those made before, verified the old way by their claimed hash)
    chain_payment_id = models.CharField(max_length=66, null=True, blank=True, unique=True)
    #: the CREATE2 address unique to the payment: plain transfers to it pay it and nothing else
    deposit_address = models.CharField(max_length=42, null=True, blank=True, unique=True)
    #: what has arrived at the deposit address and is final, in the asset's base units
    received_base_units = BaseUnitsField(default=0)
    contract_address = models.CharField(max_length=42, blank=True)

    provider_status = models.CharField(max_length=64, blank=True)
    provider_data = models.JSONField(default=dict, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    review_status = FSMField(
        default=ReviewStatus.NONE, choices=ReviewStatus.choices, protected=True, db_index=True
    )
    review_reasons = models.JSONField(default=list, blank=True)
    review_note = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        permissions = [
            ("update_payment_status", "Can set a payment's status through the API"),
            ("refund_payment", "Can refund payments"),
            ("review_payment", "Can approve or reject flagged payments"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["chain_id", "transaction_hash"], name="payment_transaction_hash_once"
            ),
        ]
        indexes = [models.Index(fields=["order", "status"])]

    def __str__(self) -> str:
        return f"{self.method} payment {self.id} ({self.status})"

    @property
    def net_amount(self) -> Decimal:
        return sub(self.amount, self.fee_amount)

    @property
    def received_amount(self) -> Decimal:
        """What has arrived for it: the final deposits at its deposit address (if it has one
        and was not paid another way), else the whole amount once paid."""
        if self.status in PAID_STATES and not (self.deposit_address and self.received_base_units):
            return self.amount
        if not self.deposit_address:
            return Decimal(0)
        decimals = int((self.provider_data.get("instructions") or {}).get("decimals") or 0)
        return amount_at_decimals(int(self.received_base_units), decimals)

    @property
    def outstanding_amount(self) -> Decimal:
        """What is still to be paid on this attempt (never below zero)."""
        return max(sub(self.amount, self.received_amount), Decimal(0))

    @property
    def refundable_amount(self) -> Decimal:
        if self.status not in REFUNDABLE_STATES:
            return Decimal(0)
        return sub(self.amount, self.refunded_amount)

    # --- status transitions -----------------------------------------------------------------
    @transition(field=status, source=[P.PENDING, P.UNKNOWN, P.PARTIALLY_PAID], target=P.PROCESSING)
    def start_processing(self) -> None:
        pass

    @transition(field=status, source=[P.PENDING, P.PROCESSING, P.UNKNOWN], target=P.PARTIALLY_PAID)
    def receive_part(self) -> None:
        """Less than the amount arrived at the deposit address: the order stays unpaid."""

    @transition(field=status, source=[P.PROCESSING, P.UNKNOWN, P.PARTIALLY_PAID], target=P.PENDING)
    def back_to_pending(self) -> None:
        """A reorg dropped the transaction, or the provider asks the payer again."""
        self.confirmations = 0
        self.block_number = None
        self.block_hash = ""

    @transition(field=status, source=[P.PENDING, P.PROCESSING], target=P.UNKNOWN)
    def mark_unknown(self) -> None:
        pass

    @transition(
        field=status,
        source=[P.PENDING, P.PROCESSING, P.UNKNOWN, P.PARTIALLY_PAID, *UNSUCCESSFUL_STATES],
        target=P.CONFIRMED,
    )
    def confirm(self) -> None:
        self.confirmed_at = timezone.now()
        self.failure_code = ""
        self.failure_reason = ""
        self.next_retry_at = None

    # an escrow partly refunded still holds the rest: releasing it completes the payment
    @transition(field=status, source=[P.CONFIRMED, P.PARTIALLY_REFUNDED], target=P.COMPLETED)
    def complete(self) -> None:
        self.completed_at = timezone.now()

    @transition(field=status, source=[P.PENDING, P.PROCESSING, P.UNKNOWN], target=P.FAILED)
    def fail(self, code: str = "", reason: str = "") -> None:
        self.failure_code = code[:64]
        self.failure_reason = reason

    @transition(field=status, source=[P.PENDING, P.UNKNOWN], target=P.CANCELLED)
    def cancel(self) -> None:
        pass

    @transition(field=status, source=[P.PENDING, P.PROCESSING, P.PARTIALLY_PAID], target=P.EXPIRED)
    def expire(self) -> None:
        pass

    @transition(
        field=status, source=[P.CONFIRMED, P.COMPLETED, P.REFUNDED], target=P.PARTIALLY_REFUNDED
    )
    def refund_partially(self) -> None:
        pass

    @transition(field=status, source=list(REFUNDABLE_STATES), target=P.REFUNDED)
    def refund_fully(self) -> None:
        self.status_before_dispute = ""

    @transition(
        field=status,
        source=[P.PARTIALLY_REFUNDED, P.REFUNDED],
        target=RETURN_VALUE(P.CONFIRMED, P.COMPLETED),
    )
    def restore_after_refund_failure(self) -> str:
        return P.COMPLETED if self.completed_at else P.CONFIRMED

    @transition(
        field=status, source=[P.CONFIRMED, P.COMPLETED, P.PARTIALLY_REFUNDED], target=P.DISPUTED
    )
    def open_dispute(self) -> None:
        self.status_before_dispute = self.status

    @transition(
        field=status,
        source=P.DISPUTED,
        target=RETURN_VALUE(P.CONFIRMED, P.COMPLETED, P.PARTIALLY_REFUNDED),
    )
    def close_dispute(self) -> str:
        previous = self.status_before_dispute or P.CONFIRMED
        self.status_before_dispute = ""
        return previous

    @transition(field=status, source=P.DISPUTED, target=P.COMPLETED)
    def release_after_dispute(self) -> None:
        self.status_before_dispute = ""
        self.completed_at = timezone.now()

    # --- review transitions -----------------------------------------------------------------
    @transition(field=review_status, source="*", target=ReviewStatus.FLAGGED)
    def flag_for_review(self, reason: str, details: dict | None = None) -> None:
        self.review_reasons = [
            *self.review_reasons,
            {"reason": reason, "details": details or {}, "at": timezone.now().isoformat()},
        ]

    @transition(field=review_status, source=ReviewStatus.FLAGGED, target=ReviewStatus.APPROVED)
    def approve_review(self, note: str = "") -> None:
        self.review_note = note

    @transition(field=review_status, source=ReviewStatus.FLAGGED, target=ReviewStatus.REJECTED)
    def reject_review(self, note: str = "") -> None:
        self.review_note = note


class RefundStatus(models.TextChoices):
    PENDING = "pending"  # recorded; the provider has not answered yet
    UNKNOWN = "unknown"  # the provider call timed out: reconcile before anything else
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Refund(RefreshableFSMModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(
        PaymentTransaction, on_delete=models.PROTECT, related_name="refunds"
    )
    amount = AmountField()
    currency = CurrencyField()
    status = FSMField(
        default=RefundStatus.PENDING, choices=RefundStatus.choices, protected=True, db_index=True
    )
    reason = models.CharField(max_length=500, blank=True)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    provider_reference = models.CharField(max_length=255, null=True, blank=True, unique=True)
    provider_status = models.CharField(max_length=64, blank=True)
    failure_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Refund {self.id} {self.amount} {self.currency} ({self.status})"

    @transition(field=status, source=[RefundStatus.PENDING], target=RefundStatus.UNKNOWN)
    def mark_unknown(self) -> None:
        pass

    @transition(
        field=status,
        source=[RefundStatus.PENDING, RefundStatus.UNKNOWN],
        target=RefundStatus.SUCCEEDED,
    )
    def succeed(self) -> None:
        self.completed_at = timezone.now()

    @transition(
        field=status,
        source=[RefundStatus.PENDING, RefundStatus.UNKNOWN, RefundStatus.SUCCEEDED],
        target=RefundStatus.FAILED,
    )
    def fail(self, reason: str = "") -> None:
        self.failure_reason = reason


class WebhookEvent(models.Model):
    """The inbox: every verified provider event, stored once before anything acts on it."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        FAILED = "failed"
        IGNORED = "ignored"

    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=128, db_index=True)
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    #: When a worker's inbox dispatcher enqueued its processing (WEBHOOK_DISPATCH = "inbox");
    #: empty while it waits, and always empty when the request enqueues it.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    #: The provider object whose re-read settles this event ("payment_intent:pi_..."), or "":
    #: one re-read covers every event about that object stored before it (``covered_by``).
    object_key = models.CharField(max_length=255, blank=True, default="")
    covered_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_once"),
        ]
        indexes = [
            # what the dispatchers look for, in arrival order: a small partial index
            models.Index(
                fields=["id"],
                condition=models.Q(status="received", dispatched_at__isnull=True),
                name="webhook_event_to_dispatch",
            ),
            models.Index(
                fields=["provider", "object_key"],
                condition=models.Q(status__in=["received", "failed"]) & ~models.Q(object_key=""),
                name="webhook_event_open_by_object",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id} {self.event_type}"


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key and the first response given for it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class ChainCursor(models.Model):
    """How far the monitor has read one chain: the height and hash of the last block read."""

    chain_id = models.PositiveBigIntegerField(unique=True)
    block_number = models.PositiveBigIntegerField(default=0)
    block_hash = models.CharField(max_length=66, blank=True)
    head_number = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The chain's head when the cursor was last stored."
    )
    recent_hashes = models.JSONField(
        default=dict, blank=True, help_text="{height: hash} of the last blocks read."
    )
    scanned_number = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=(
            "The last block whose deposits and Paid events were read (above the cursor while "
            "they are not final): read once, unless its hash changes."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"chain {self.chain_id} @ {self.block_number}"


class FlaggedPayment(PaymentTransaction):
    """The staff review queue: payments flagged for review (a proxy; no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "flagged payment"
        verbose_name_plural = "review queue"


class ChainTransaction(models.Model):
    """A transaction the platform sends (escrow release/refund/resolve, crypto refund payouts)
    or one support records for a refund: its nonce, raw bytes and fate, tracked by the monitor
    until it has its confirmations."""

    class Purpose(models.TextChoices):
        RELEASE = "release"
        REFUND = "refund"
        RESOLVE = "resolve"
        PAYOUT = "payout"  # a crypto refund sent from the payout wallet
        MANUAL_REFUND = "manual_refund"  # a refund support sent and recorded by hash
        SWEEP = "sweep"  # deposit address funds moved to the receiving address (operator)
        EXCESS_RETURN = "excess_return"  # what a deposit paid beyond the amount, sent back

    class Status(models.TextChoices):
        SENT = "sent"  # broadcast (or recorded), not mined yet
        MINED = "mined"
        CONFIRMED = "confirmed"
        FAILED = "failed"  # reverted, or never mined

    chain_id = models.PositiveBigIntegerField()
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    payment = models.ForeignKey(
        PaymentTransaction, on_delete=models.PROTECT, related_name="chain_transactions"
    )
    refund = models.ForeignKey(
        Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="chain_transactions"
    )
    #: the deposit that caused it (a sweep or an excess return): one of each per deposit
    deposit = models.ForeignKey(
        "ChainDeposit",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="chain_transactions",
    )
    from_address = models.CharField(max_length=42, blank=True)
    to_address = models.CharField(max_length=42, blank=True)
    nonce = models.PositiveBigIntegerField(null=True, blank=True)
    value_base_units = BaseUnitsField(default=0)
    transaction_hash = models.CharField(max_length=66)
    raw_transaction = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.SENT, db_index=True
    )
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=66, blank=True)
    gas_used = BaseUnitsField(null=True, blank=True)
    effective_gas_price = BaseUnitsField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["chain_id", "transaction_hash"], name="chain_transaction_hash_once"
            ),
            models.UniqueConstraint(
                fields=["chain_id", "from_address", "nonce"],
                condition=models.Q(nonce__isnull=False),
                name="chain_transaction_nonce_once",
            ),
            models.UniqueConstraint(
                fields=["deposit", "purpose"],
                condition=models.Q(deposit__isnull=False),
                name="chain_transaction_once_per_deposit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.transaction_hash} ({self.status})"


class ChainDeposit(models.Model):
    """Value that arrived at a payment's deposit address: the native coin a transaction sent
    to it (``log_index`` -1) or an accepted token's ``Transfer`` to it. Seen while shallow,
    final at depth; a reorg that drops it marks it dropped. The payment's state follows the
    sum of its final deposits."""

    class Status(models.TextChoices):
        SEEN = "seen"
        FINAL = "final"
        DROPPED = "dropped"

    payment = models.ForeignKey(
        PaymentTransaction, on_delete=models.PROTECT, related_name="deposits"
    )
    chain_id = models.PositiveBigIntegerField()
    transaction_hash = models.CharField(max_length=66)
    log_index = models.BigIntegerField()  # -1: the transaction's own value (native coin)
    token_address = models.CharField(max_length=42, blank=True)  # blank: the native coin
    from_address = models.CharField(max_length=42)
    amount_base_units = BaseUnitsField()
    #: the part of it beyond what the payment asks, decided when it became final: sent back
    #: to ``from_address`` from the payout wallet (one ``excess_return`` per deposit)
    excess_base_units = BaseUnitsField(default=0)
    block_number = models.PositiveBigIntegerField()
    block_hash = models.CharField(max_length=66)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.SEEN, db_index=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["block_number", "log_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["chain_id", "transaction_hash", "log_index"], name="chain_deposit_once"
            )
        ]

    def __str__(self) -> str:
        return f"deposit {self.amount_base_units} in {self.transaction_hash} ({self.status})"
