"""The webhook inbox in the back office (read, replay)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from common.admin import ReadOnlyAdminMixin
from payments.models import (
    WebhookEvent,
)
from payments.webhooks.inbox import webhook_process


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("received_at", "provider", "event_type", "event_id", "status", "attempts")
    list_filter = ("provider", "status", "event_type", "received_at")
    search_fields = ("event_id", "event_type")
    date_hierarchy = "received_at"
    readonly_fields = (
        "provider",
        "event_id",
        "event_type",
        "payload",
        "status",
        "attempts",
        "last_error",
        "received_at",
        "processed_at",
        "next_attempt_at",
        "object_key",
        "covered_by",
        "dispatched_at",
    )
    actions = ["replay_action"]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.change_webhookevent")

    def changelist_view(self, request, extra_context=None):  # type: ignore[no-untyped-def]
        posted = request.POST.get("action") if request.method == "POST" else None
        if posted and posted in self.actions and posted not in self.get_actions(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    @admin.action(description="Replay the selected events", permissions=["replay"])
    def replay_action(self, request, queryset):  # type: ignore[no-untyped-def]
        for event in queryset:
            try:
                done = webhook_process(event.id)
            except Exception as exc:
                self.message_user(
                    request, f"{event.event_id}: failed again ({exc})", messages.ERROR
                )
            else:
                status = done.status if done else "gone"
                self.message_user(request, f"{event.event_id}: {status}.")
