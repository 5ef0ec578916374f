"""Fee rules in the back office."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from common.errors import DomainError
from orders.audit import Actor
from payments.models import (
    FeeRule,
)
from payments.services.fees import fee_rule_clean, fee_rule_update


class FeeRuleForm(forms.ModelForm):
    """Checks a rule with the same rules as the service, so bad input is a form error."""

    class Meta:
        model = FeeRule
        fields = ("method", "currency", "percentage", "fixed_amount", "minimum_fee", "maximum_fee")

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        if self.errors:
            return data
        try:
            fee_rule_clean(**{name: data.get(name) for name in self.Meta.fields})
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        return data


@admin.register(FeeRule)
class FeeRuleAdmin(admin.ModelAdmin):
    """Saving a rule creates its next version; the old version stays for the payments that
    used it."""

    list_display = (
        "method",
        "currency",
        "version",
        "percentage",
        "fixed_amount",
        "minimum_fee",
        "maximum_fee",
        "is_active",
        "created_at",
    )
    list_filter = ("method", "is_active")
    form = FeeRuleForm
    fields = ("method", "currency", "percentage", "fixed_amount", "minimum_fee", "maximum_fee")

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        new = fee_rule_update(
            method=obj.method,
            currency=obj.currency,
            percentage=obj.percentage,
            fixed_amount=obj.fixed_amount,
            minimum_fee=obj.minimum_fee,
            maximum_fee=obj.maximum_fee,
            actor=Actor.for_admin(request.user),
        )
        obj.pk = new.pk
        obj.version = new.version

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
