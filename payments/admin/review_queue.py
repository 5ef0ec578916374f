"""The staff review queue: flagged payments."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse

from common.admin import AdminExtension
from payments.admin.base import PERM_REVIEW
from payments.admin.payments import PaymentTransactionAdmin, ReviewReasonFilter
from payments.models import (
    FlaggedPayment,
    PaymentTransaction,
    ReviewStatus,
)


@admin.register(FlaggedPayment)
class ReviewQueueAdmin(PaymentTransactionAdmin):
    """Payments waiting for a staff decision (amount mismatch, late, high value, dispute,
    reorg, failed refund)."""

    list_display = (
        "short_id",
        "order_link",
        "method",
        "status",
        "reasons",
        "amount_display",
        "currency",
        "reference_link",
        "created_at",
    )
    list_filter = (ReviewReasonFilter, "method", "status", "currency", "created_at")
    actions = ["approve_action", "reject_action"]
    # the payment page's inlines and tools, not its extra URLs (those live under the payments)
    extension = AdminExtension(
        inlines=PaymentTransactionAdmin.extension.inlines,
        object_tools=PaymentTransactionAdmin.extension.object_tools,
    )

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).filter(review_status=ReviewStatus.FLAGGED)

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return (
            request.user.is_active and request.user.is_staff and request.user.has_perm(PERM_REVIEW)
        )

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return self.has_view_permission(request)

    @admin.display(description="reasons")
    def reasons(self, obj: PaymentTransaction) -> str:
        return ", ".join(sorted({r.get("reason", "") for r in obj.review_reasons}))

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        # One page per payment: the queue's rows open the payment itself.
        return HttpResponseRedirect(
            reverse("admin:payments_paymenttransaction_change", args=[object_id])
        )
