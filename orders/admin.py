from django.contrib import admin

from common.admin import AdminExtension, ExtensibleAdminMixin, ReadOnlyAdminMixin, StaffInlineMixin
from orders.models import Order, OrderPaymentEvent


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


@admin.register(Order)
class OrderAdmin(ExtensibleAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Orders are changed only by their services (API, payment sync); here they are read.
    Apps built on orders add their inlines through ``extension`` (payments: the payments)."""

    extension = AdminExtension()
    inlines = [OrderPaymentEventInline]

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
