"""Input and output shapes of the payment endpoints (one input serializer per endpoint)."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.api import (
    MAX_DB_INT,
    AmountInputField,
    CurrencyInputField,
    MoneyField,
    StrictSerializer,
)
from common.errors import ValidationFailed
from payments.models import PaymentMethod, PaymentStatus, RefundStatus
from payments.providers.chain.client import address_problem

TRANSACTION_HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"


@extend_schema_field({"type": "string", "pattern": TRANSACTION_HASH_PATTERN})
class TransactionHashField(serializers.CharField):
    """0x and 64 hex digits; anything else is 400 ``invalid_transaction_hash``."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not re.fullmatch(TRANSACTION_HASH_PATTERN, value):
            raise ValidationFailed(
                "A transaction hash is 0x and 64 hex digits.", code="invalid_transaction_hash"
            )
        return value


class PayerAddressField(serializers.CharField):
    """A wallet address: 0x and 40 hex digits, all lower case or all upper case (the schema's
    pattern), or in its EIP-55 checksummed mixed case (a checksum no pattern can state: a
    mixed-case address with a wrong checksum is refused as a likely typo)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=42, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        problem = address_problem(value)
        if problem:
            raise serializers.ValidationError(problem, code="invalid_payer_address")
        return value.lower()


extend_schema_field(
    {"type": "string", "pattern": r"^0x([0-9a-f]{40}|[0-9A-F]{40})$", "example": "0x" + "3c" * 20}
)(PayerAddressField)


class MethodInputField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=PaymentMethod.choices, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str) and data in PaymentMethod.values:
            return data
        raise serializers.ValidationError(
            f"Unknown payment method; supported: {', '.join(PaymentMethod.values)}.",
            code="unknown_method",
        )


#: The method-specific fields, and which method takes which (none without a payment).
CHAIN_FIELDS = ("payer_address", "chain_id", "token", "transaction_hash")
METHOD_FIELDS = {
    PaymentMethod.FIAT: (),
    PaymentMethod.CRYPTO: CHAIN_FIELDS,
    PaymentMethod.ESCROW: ("chain_id", "token", "transaction_hash", "payer_address"),
}


class MethodDetailsMixin(serializers.Serializer):
    """Method-specific fields a client may give when it creates a payment."""

    transaction_hash = TransactionHashField(
        required=False,
        help_text="crypto/escrow: the transaction already sent (0x and 64 hex digits).",
    )
    chain_id = serializers.IntegerField(
        min_value=1, max_value=MAX_DB_INT, required=False, help_text="crypto/escrow: chain id."
    )
    token = serializers.CharField(
        max_length=42,
        required=False,
        allow_blank=True,
        help_text="crypto/escrow: token symbol or ERC-20 address; blank for the native coin.",
    )

    payer_address = PayerAddressField(
        required=False,
        help_text="The wallet the buyer pays from (0x and 40 hex digits; a mixed-case "
        "address must carry its EIP-55 checksum). Crypto: optional, it decides nothing for a "
        "payment through the payment contract; required on a chain still taking plain "
        "transfers (`legacy_transfers`), where only a transaction sent from it pays. Escrow "
        "with EscrowV2: required, the signed deposit intent names it.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        allowed = METHOD_FIELDS.get(attrs.get("payment_method") or "", ())
        misplaced = [name for name in CHAIN_FIELDS if name in attrs and name not in allowed]
        if misplaced:
            raise serializers.ValidationError(
                {
                    name: [
                        serializers.ErrorDetail(
                            "Not a field of this payment method.", code="not_for_method"
                        )
                    ]
                    for name in misplaced
                }
            )
        return attrs

    def method_details(self) -> dict[str, Any]:
        data = self.validated_data
        details = {k: data[k] for k in ("chain_id", "token") if k in data}
        if data.get("payer_address"):
            details["payer_address"] = data["payer_address"]
        return details


class PaymentCreateInputSerializer(MethodDetailsMixin, StrictSerializer):
    payment_method = MethodInputField()
    amount = AmountInputField(required=False, help_text="Default: the outstanding amount.")
    currency = CurrencyInputField(required=False, help_text="Must be the order's currency.")


class OrderCreateWithPaymentFields(MethodDetailsMixin, serializers.Serializer):
    payment_method = MethodInputField(
        required=False,
        help_text="Create the order's first payment with it, in the same transaction.",
    )


class PaymentRetryInputSerializer(StrictSerializer):
    payment_method = MethodInputField(
        required=False, help_text="Switch to another method; default: the failed one's."
    )
    payer_address = PayerAddressField(
        required=False,
        help_text="crypto: the wallet the new attempt is paid from; default: the failed attempt's.",
    )


class RefundInputSerializer(StrictSerializer):
    amount = AmountInputField(required=False, help_text="Default: all that is refundable.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    transaction_id = serializers.UUIDField(
        required=False, help_text="The payment to refund; default: the one with most left."
    )


class PaymentStatusUpdateInputSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=PaymentStatus.choices)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    details = serializers.DictField(required=False, default=dict)


class MonitorInputSerializer(StrictSerializer):
    transaction_id = serializers.UUIDField(required=False)
    order_id = serializers.UUIDField(
        required=False, help_text="Instead of transaction_id: the order's latest payment."
    )
    transaction_hash = TransactionHashField(help_text="The transaction sent.")
    chain_id = serializers.IntegerField(min_value=1, max_value=MAX_DB_INT, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if not attrs.get("transaction_id") and not attrs.get("order_id"):
            raise serializers.ValidationError(
                {
                    "transaction_id": [
                        serializers.ErrorDetail("Give transaction_id or order_id.", code="required")
                    ]
                }
            )
        return attrs


class TransactionSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    order_id = serializers.UUIDField(read_only=True)
    payment_method = serializers.ChoiceField(
        source="method", choices=PaymentMethod.choices, read_only=True
    )
    status = serializers.ChoiceField(choices=PaymentStatus.choices, read_only=True)
    amount = MoneyField()
    currency = serializers.CharField(read_only=True)
    fee_amount = MoneyField()
    refunded_amount = MoneyField()
    received_amount = MoneyField(
        help_text="What has arrived and is final (crypto: the deposits at the payment's deposit "
        "address; a `partially_paid` payment waits for the rest at the same address)."
    )
    outstanding_amount = MoneyField(help_text="What is still to be paid on this attempt.")
    deposit_address = serializers.CharField(read_only=True, allow_null=True)
    transaction_hash = serializers.CharField(read_only=True, allow_null=True)
    chain_id = serializers.IntegerField(read_only=True, allow_null=True)
    confirmations = serializers.IntegerField(read_only=True)
    required_confirmations = serializers.IntegerField(read_only=True)
    payment_intent_id = serializers.CharField(read_only=True, allow_null=True)
    escrow_id = serializers.CharField(read_only=True, allow_null=True)
    failure_reason = serializers.CharField(read_only=True, allow_blank=True)
    retry_of_id = serializers.UUIDField(read_only=True, allow_null=True)
    payment_instructions = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    confirmed_at = serializers.DateTimeField(read_only=True, allow_null=True)

    def get_payment_instructions(self, obj: Any) -> dict[str, Any]:
        """What the payer must do (crypto: chain, address, exact amount, transaction request)."""
        return dict((obj.provider_data or {}).get("instructions") or {})


class TransactionCreatedSerializer(TransactionSerializer):
    client_secret = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="Card payments: Stripe's client_secret for Stripe.js; given once, here only.",
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        result = self.context.get("provider_result")
        if result is not None and result.instructions:
            data["payment_instructions"] = dict(result.instructions)
        data["client_secret"] = (result.client_secret or None) if result is not None else None
        return data


class RefundSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    transaction_id = serializers.UUIDField(source="payment_id", read_only=True)
    order_id = serializers.UUIDField(source="payment.order_id", read_only=True)
    amount = MoneyField()
    currency = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=RefundStatus.choices, read_only=True)
    reason = serializers.CharField(read_only=True, allow_blank=True)
    failure_reason = serializers.CharField(read_only=True, allow_blank=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    completed_at = serializers.DateTimeField(read_only=True, allow_null=True)


class MonitorResultSerializer(serializers.Serializer):
    transaction_id = serializers.UUIDField(source="id", read_only=True)
    status = serializers.ChoiceField(choices=PaymentStatus.choices, read_only=True)
    transaction_hash = serializers.CharField(read_only=True, allow_null=True)
    confirmations = serializers.IntegerField(read_only=True)
    required_confirmations = serializers.IntegerField(read_only=True)
