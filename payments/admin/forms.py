"""Forms of the back office's payment actions; each validates, then one service acts."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from common.errors import DomainError
from common.money import format_amount, parse_amount
from payments.models import PaymentTransaction


class RefundForm(forms.Form):
    amount = forms.CharField(
        max_length=64, help_text="Default: everything still refundable. Partial refunds allowed."
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, payment: PaymentTransaction, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.payment = payment
        kwargs.setdefault(
            "initial",
            {"amount": format_amount(payment.refundable_amount, payment.currency)},
        )
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = f"Amount ({payment.currency})"

    def clean_amount(self) -> Decimal:
        try:
            value = parse_amount(self.cleaned_data["amount"], self.payment.currency)
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        room = self.payment.refundable_amount
        if value > room:
            raise forms.ValidationError(
                f"At most {format_amount(room, self.payment.currency)} "
                f"{self.payment.currency} can be refunded.",
                code="refund_exceeds_paid",
            )
        return value


class NoteForm(forms.Form):
    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))


class ReviewForm(NoteForm):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])


class DisputeResolutionForm(NoteForm):
    outcome = forms.ChoiceField(
        choices=[
            ("release", "Release to the seller (dispute decided for the seller)"),
            ("refund", "Refund the buyer (dispute decided for the buyer)"),
        ],
        widget=forms.RadioSelect,
    )


class PeriodForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
