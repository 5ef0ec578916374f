from django.contrib import admin

from orders.admin import ReadOnlyAdminMixin

from .models import PaymentReceipt


@admin.register(PaymentReceipt)
class PaymentReceiptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("number", "kind", "payment", "amount", "currency", "issued_at")
    list_filter = ("kind", "currency", "issued_at")
    search_fields = ("number", "payment__id", "order_id")
