"""Refunds in the back office (read only)."""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from common.admin import ReadOnlyAdminMixin
from payments.models import (
    Refund,
)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "payment_link", "amount", "currency", "status", "reason", "created_at")
    list_filter = ("status", "currency", "payment__method", "created_at")
    search_fields = (
        "provider_reference",
        "payment__transaction_hash",
        "payment__payment_intent_id",
    )
    date_hierarchy = "created_at"
    list_select_related = ("payment",)

    def get_search_results(self, request, queryset, search_term):  # type: ignore[no-untyped-def]
        try:
            as_uuid = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        q = queryset.filter(id=as_uuid) | queryset.filter(payment_id=as_uuid)
        return q | queryset.filter(payment__order_id=as_uuid), False

    @admin.display(description="payment")
    def payment_link(self, obj: Refund) -> str:
        url = reverse("admin:payments_paymenttransaction_change", args=[obj.payment_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.payment_id)[:8])
