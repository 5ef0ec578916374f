from django.contrib import admin

from common.admin import ReadOnlyAdminMixin
from ops.models import Incident, SecurityEvent, TaskCounter


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "username", "ip_address", "method", "path", "request_id")
    list_filter = ("kind", "created_at")
    search_fields = ("username", "path", "request_id", "ip_address")
    date_hierarchy = "created_at"
    readonly_fields = (
        "kind",
        "created_at",
        "user",
        "username",
        "ip_address",
        "method",
        "path",
        "request_id",
        "details",
    )


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "title", "opened_at", "last_seen_at", "resolved_at", "notified")
    list_filter = ("resolved_at", "key")
    search_fields = ("key", "title")


@admin.register(TaskCounter)
class TaskCounterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("task", "event", "count", "updated_at")
    list_filter = ("event",)
