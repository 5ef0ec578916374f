from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from orders.models import Order, OrderPaymentEvent


class ReadOnlyAdminMixin:
    """Shows rows; never adds, changes or deletes them."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class StaffInlineMixin(ReadOnlyAdminMixin):
    """A read-only inline shown to every staff member who may open its parent page."""

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_staff


class OrderPaymentEventInline(StaffInlineMixin, admin.TabularInline):
    model = OrderPaymentEvent
    extra = 0
    fields = (
        "created_at",
        "entity",
        "action",
        "from_state",
        "to_state",
        "actor_type",
        "actor_label",
        "payment_id",
        "reference",
    )
    readonly_fields = fields


def _payment_inline():  # type: ignore[no-untyped-def]
    """Payments on an order. Orders know nothing of payments, so the model is looked up by
    name (the payments app is always installed with the back office)."""
    from django.apps import apps

    payment_model = apps.get_model("payments", "PaymentTransaction")

    class PaymentInline(StaffInlineMixin, admin.TabularInline):
        model = payment_model
        extra = 0
        fields = (
            "payment_link",
            "method",
            "status",
            "review_status",
            "amount",
            "currency",
            "fee_amount",
            "refunded_amount",
            "created_at",
            "confirmed_at",
        )
        readonly_fields = fields
        verbose_name_plural = "payments"

        @admin.display(description="payment")
        def payment_link(self, obj):  # type: ignore[no-untyped-def]
            url = reverse("admin:payments_paymenttransaction_change", args=[obj.pk])
            return format_html('<a href="{}">{}</a>', url, obj.pk)

    return PaymentInline


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Orders are changed only by their services (API, payment sync); here they are read."""

    list_display = (
        "id",
        "buyer_email",
        "seller_email",
        "amount",
        "currency",
        "status",
        "created_at",
    )
    list_filter = ("status", "currency", "created_at")
    search_fields = ("buyer__email", "seller__email", "buyer__username", "seller__username")
    search_help_text = "Order id, buyer or seller email or username."
    date_hierarchy = "created_at"
    list_select_related = ("buyer", "seller")
    readonly_fields = (
        "id",
        "buyer",
        "seller",
        "amount",
        "currency",
        "description",
        "items",
        "status",
        "status_before_dispute",
        "paid_at",
        "shipped_at",
        "delivered_at",
        "completed_at",
        "cancelled_at",
        "created_at",
    )
    fields = readonly_fields

    def get_inlines(self, request, obj):  # type: ignore[no-untyped-def]
        from django.apps import apps

        inlines = [OrderPaymentEventInline]
        if apps.is_installed("payments"):
            inlines.insert(0, _payment_inline())
        return inlines

    def get_search_results(self, request, queryset, search_term):  # type: ignore[no-untyped-def]
        import uuid

        try:
            as_uuid = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(id=as_uuid), False

    @admin.display(description="buyer", ordering="buyer__email")
    def buyer_email(self, obj: Order) -> str:
        return obj.buyer.email or obj.buyer.username

    @admin.display(description="seller", ordering="seller__email")
    def seller_email(self, obj: Order) -> str:
        return obj.seller.email or obj.seller.username


@admin.register(OrderPaymentEvent)
class OrderPaymentEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "order",
        "entity",
        "action",
        "from_state",
        "to_state",
        "actor_type",
        "actor_label",
    )
    list_filter = ("entity", "actor_type", "created_at")
    search_fields = ("payment_id", "reference", "action", "actor_label")
    date_hierarchy = "created_at"
    readonly_fields = (
        "order",
        "payment_id",
        "refund_id",
        "entity",
        "action",
        "from_state",
        "to_state",
        "actor_type",
        "actor_user",
        "actor_label",
        "reference",
        "details",
        "created_at",
    )

    def get_search_results(self, request, queryset, search_term):  # type: ignore[no-untyped-def]
        import uuid

        try:
            as_uuid = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        q = queryset.filter(order_id=as_uuid) | queryset.filter(payment_id=as_uuid)
        return q | queryset.filter(refund_id=as_uuid), False
