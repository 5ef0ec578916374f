"""The payments list and change page of the back office."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from common.admin import AdminExtension, ExtensibleAdminMixin, ReadOnlyAdminMixin, StaffInlineMixin
from common.money import format_amount
from orders.admin import OrderAdmin
from orders.models import OrderPaymentEvent
from payments.admin.actions import PaymentActionsMixin
from payments.admin.analytics import AnalyticsMixin
from payments.admin.base import PERM_REFUND, PERM_REVIEW, PERM_STATUS, provider_link
from payments.models import (
    PaymentStatus,
    PaymentTransaction,
    Refund,
    ReviewStatus,
)


class RefundInline(StaffInlineMixin, admin.TabularInline):
    model = Refund
    extra = 0
    fields = (
        "id",
        "amount",
        "currency",
        "status",
        "reason",
        "provider_reference",
        "requested_by",
        "created_at",
        "completed_at",
    )
    readonly_fields = fields


class ReviewReasonFilter(admin.SimpleListFilter):
    """Why a payment was flagged (read from the audit trail's flag events)."""

    title = "review reason"
    parameter_name = "reason"
    REASONS = (
        ("amount_mismatch", "Amount mismatch"),
        ("late_payment", "Late payment"),
        ("high_value", "High value"),
        ("dispute", "Dispute"),
        ("reorg", "Reorg"),
        ("refund_failed", "Refund failed"),
    )

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return self.REASONS

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        if not self.value():
            return queryset
        ids = OrderPaymentEvent.objects.filter(
            entity="review", action="flag_for_review", details__reason=self.value()
        ).values("payment_id")
        return queryset.filter(id__in=ids)


@admin.register(PaymentTransaction)
class PaymentTransactionAdmin(
    ExtensibleAdminMixin, PaymentActionsMixin, AnalyticsMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = (
        "short_id",
        "order_link",
        "method",
        "status",
        "review_status",
        "amount_display",
        "currency",
        "fee_display",
        "reference_link",
        "created_at",
    )
    list_filter = ("method", "status", "review_status", "currency", "created_at")
    search_fields = (
        "transaction_hash",
        "payment_intent_id",
        "escrow_id",
        "order__buyer__email",
        "order__seller__email",
    )
    search_help_text = (
        "Payment or order id, transaction hash, PaymentIntent id, buyer or seller email."
    )
    date_hierarchy = "created_at"
    list_select_related = ("order",)
    extension = AdminExtension()  # receipts adds its inline, tool and page through it
    inlines: list[Any] = [RefundInline]
    change_form_template = "admin/payments/payment_change_form.html"
    change_list_template = "admin/payments/payment_change_list.html"
    fieldsets = (
        (None, {"fields": ("id", "order_link", "method", "provider", "status", "review_status")}),
        (
            "Money",
            {
                "fields": (
                    "amount_display",
                    "currency",
                    "fee_display",
                    "fee_rule",
                    "refunded_display",
                    "refundable_display",
                )
            },
        ),
        (
            "Provider",
            {
                "fields": (
                    "reference_link",
                    "payment_intent_id",
                    "chain_id",
                    "transaction_hash",
                    "confirmations",
                    "required_confirmations",
                    "block_number",
                    "escrow_id",
                    "contract_address",
                    "provider_status",
                    "failure_code",
                    "failure_reason",
                    "attempts",
                )
            },
        ),
        ("Review", {"fields": ("review_reasons", "review_note")}),
        ("Dates", {"fields": ("created_at", "confirmed_at", "completed_at", "expires_at")}),
        ("Audit trail", {"fields": ("audit_trail",)}),
    )
    readonly_fields = (
        "id",
        "order_link",
        "method",
        "provider",
        "status",
        "review_status",
        "amount_display",
        "currency",
        "fee_display",
        "fee_rule",
        "refunded_display",
        "refundable_display",
        "reference_link",
        "payment_intent_id",
        "chain_id",
        "transaction_hash",
        "confirmations",
        "required_confirmations",
        "block_number",
        "escrow_id",
        "contract_address",
        "provider_status",
        "failure_code",
        "failure_reason",
        "attempts",
        "review_reasons",
        "review_note",
        "created_at",
        "confirmed_at",
        "completed_at",
        "expires_at",
        "audit_trail",
    )
    actions = [
        "refund_action",
        "retry_action",
        "cancel_action",
        "approve_action",
        "reject_action",
        "resolve_dispute_action",
    ]

    # --- permissions ------------------------------------------------------------------------
    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_staff

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM_REFUND)

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM_REVIEW)

    def has_status_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM_STATUS)

    def _require(self, request: HttpRequest, perm: str) -> None:
        if not request.user.is_staff or not request.user.has_perm(perm):
            raise PermissionDenied

    def changelist_view(self, request, extra_context=None):  # type: ignore[no-untyped-def]
        # A posted action the user may not run is refused outright, not silently ignored.
        posted = request.POST.get("action") if request.method == "POST" else None
        if posted and posted in self.actions and posted not in self.get_actions(request):
            raise PermissionDenied
        extra_context = {**(extra_context or {}), "analytics_url": self._url("analytics")}
        return super().changelist_view(request, extra_context)

    # --- list and page columns --------------------------------------------------------------
    def get_search_results(self, request, queryset, search_term):  # type: ignore[no-untyped-def]
        term = search_term.strip()
        try:
            as_uuid = uuid.UUID(term)
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(id=as_uuid) | queryset.filter(order_id=as_uuid), False

    @admin.display(description="payment", ordering="id")
    def short_id(self, obj: PaymentTransaction) -> str:
        return str(obj.id)[:8]

    @admin.display(description="order")
    def order_link(self, obj: PaymentTransaction) -> str:
        url = reverse("admin:orders_order_change", args=[obj.order_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.order_id)[:8])

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: PaymentTransaction) -> str:
        return format_amount(obj.amount, obj.currency)

    @admin.display(description="fee", ordering="fee_amount")
    def fee_display(self, obj: PaymentTransaction) -> str:
        return format_amount(obj.fee_amount, obj.currency)

    @admin.display(description="refunded")
    def refunded_display(self, obj: PaymentTransaction) -> str:
        return format_amount(obj.refunded_amount, obj.currency)

    @admin.display(description="refundable")
    def refundable_display(self, obj: PaymentTransaction) -> str:
        return f"{format_amount(obj.refundable_amount, obj.currency)} {obj.currency}"

    @admin.display(description="provider reference")
    def reference_link(self, obj: PaymentTransaction) -> str:
        return provider_link(obj)

    @admin.display(description="events")
    def audit_trail(self, obj: PaymentTransaction) -> str:
        events = OrderPaymentEvent.objects.filter(payment_id=obj.id).select_related("actor_user")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.entity,
                    e.action,
                    e.from_state or "·",
                    e.to_state or "·",
                    f"{e.actor_type}: {e.actor_label}",
                    ", ".join(f"{k}={v}" for k, v in sorted(e.details.items()) if v)[:200],
                )
                for e in events
            ),
        )
        return format_html(
            '<table id="audit-trail"><thead><tr><th>when</th><th>entity</th><th>action</th>'
            "<th>change</th><th>actor</th><th>details</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # --- URLs -------------------------------------------------------------------------------
    def _url(self, name: str, *args: Any) -> str:
        opts = self.opts
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=args)

    def get_urls(self):  # type: ignore[no-untyped-def]
        opts = self.opts
        prefix = f"{opts.app_label}_{opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("analytics/", wrap(self.analytics_view), name=f"{prefix}_analytics"),
            path("<uuid:object_id>/refund/", wrap(self.refund_view), name=f"{prefix}_refund"),
            path("<uuid:object_id>/review/", wrap(self.review_view), name=f"{prefix}_review"),
            path("<uuid:object_id>/retry/", wrap(self.retry_view), name=f"{prefix}_retry"),
            path("<uuid:object_id>/cancel/", wrap(self.cancel_view), name=f"{prefix}_cancel"),
            path(
                "<uuid:object_id>/resolve-dispute/",
                wrap(self.resolve_dispute_view),
                name=f"{prefix}_resolve_dispute",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        obj = self.get_object(request, object_id)
        tools: list[tuple[str, str, str]] = []
        if obj is not None:
            if self.has_refund_permission(request) and obj.refundable_amount > 0:
                tools.append(("refund", "Refund…", self._url("refund", obj.pk)))
            if self.has_review_permission(request) and obj.review_status == ReviewStatus.FLAGGED:
                tools.append(("review", "Review…", self._url("review", obj.pk)))
            if self.has_status_permission(request) and obj.status in (
                PaymentStatus.FAILED,
                PaymentStatus.EXPIRED,
                PaymentStatus.CANCELLED,
            ):
                tools.append(("retry", "Retry…", self._url("retry", obj.pk)))
            if self.has_status_permission(request) and obj.status in (
                PaymentStatus.PENDING,
                PaymentStatus.UNKNOWN,
            ):
                tools.append(("cancel", "Cancel…", self._url("cancel", obj.pk)))
            if self.has_refund_permission(request) and obj.status == PaymentStatus.DISPUTED:
                tools.append(("resolve", "Resolve dispute…", self._url("resolve_dispute", obj.pk)))
            tools += self.extension_tools(request, obj)
        extra_context = {**(extra_context or {}), "payment_tools": tools}
        return super().change_view(request, object_id, form_url, extra_context)


class OrderPaymentInline(StaffInlineMixin, admin.TabularInline):
    """The payments of an order, on the order's admin page (added through its extension)."""

    model = PaymentTransaction
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
    def payment_link(self, obj: PaymentTransaction) -> str:
        url = reverse("admin:payments_paymenttransaction_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.pk)


OrderAdmin.extension.inlines.append(OrderPaymentInline)
