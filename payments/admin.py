from django import forms
from django.contrib import admin

from orders.admin import ReadOnlyAdminMixin
from orders.errors import DomainError

from .fees import fee_rule_clean
from .models import FeeRule, PaymentTransaction, Refund, WebhookEvent


class RefundInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Refund
    extra = 0
    fields = ("id", "amount", "currency", "status", "reason", "provider_reference", "created_at")
    readonly_fields = fields


@admin.register(PaymentTransaction)
class PaymentTransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "order",
        "method",
        "status",
        "amount",
        "currency",
        "fee_amount",
        "review_status",
        "created_at",
    )
    list_filter = ("method", "status", "review_status", "currency", "created_at")
    search_fields = (
        "id",
        "order__id",
        "transaction_hash",
        "payment_intent_id",
        "order__buyer__email",
        "order__seller__email",
    )
    date_hierarchy = "created_at"
    inlines = [RefundInline]

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_staff


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "payment", "amount", "currency", "status", "created_at")
    list_filter = ("status", "currency", "created_at")
    search_fields = ("id", "payment__id", "provider_reference")


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("received_at", "provider", "event_type", "event_id", "status", "attempts")
    list_filter = ("provider", "status", "event_type")
    search_fields = ("event_id",)


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
        from orders.audit import Actor

        from .fees import fee_rule_update

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
