from django.contrib import admin

from common.admin import ReadOnlyAdminMixin
from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "recipient", "role", "status", "attempts", "sent_at")
    list_filter = ("kind", "status", "role", "created_at")
    search_fields = ("recipient", "event_key", "order_id", "payment_id")
    date_hierarchy = "created_at"
