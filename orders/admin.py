from django.contrib import admin

from .models import Order, OrderPaymentEvent


class ReadOnlyAdminMixin:
    """Shows rows; never adds, changes or deletes them."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class OrderPaymentEventInline(ReadOnlyAdminMixin, admin.TabularInline):
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


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "buyer", "seller", "amount", "currency", "status", "created_at")
    list_filter = ("status", "currency", "created_at")
    search_fields = ("id", "buyer__email", "seller__email", "buyer__username", "seller__username")
    date_hierarchy = "created_at"
    readonly_fields = (
        "status",
        "status_before_dispute",
        "paid_at",
        "shipped_at",
        "delivered_at",
        "completed_at",
        "cancelled_at",
        "created_at",
    )
    inlines = [OrderPaymentEventInline]

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


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
    search_fields = ("order__id", "payment_id", "reference", "action")
    date_hierarchy = "created_at"
