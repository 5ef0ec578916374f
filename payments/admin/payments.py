"""The back office for payments: lists, the review queue, actions calling the services, links
out to explorers and Stripe, and the analytics page.

Every action is an entry point: it reads a form, calls one service with
``Actor.for_admin(request.user)`` (so the audit trail names the staff member) and reports.
Actions that move money or decide reviews need their permission (``payments.refund_payment``,
``payments.review_payment``; retry and cancel ``payments.update_payment_status``): without it
a staff member neither sees the action nor can post it (403).
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from common.errors import DomainError
from common.money import format_amount, sub
from orders.admin import ReadOnlyAdminMixin, StaffInlineMixin
from orders.audit import Actor
from orders.models import OrderPaymentEvent
from payments.admin.charts import analytics_charts
from payments.admin.forms import DisputeResolutionForm, NoteForm, PeriodForm, RefundForm, ReviewForm
from payments.analytics import analytics_period, payment_analytics, payment_analytics_csv
from payments.links import explorer_tx_url, stripe_payment_url
from payments.models import (
    FeeRule,
    FlaggedPayment,
    PaymentMethod,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    ReviewStatus,
    WebhookEvent,
)
from payments.services.escrow import escrow_resolve
from payments.services.fees import fee_rule_clean
from payments.services.payments import (
    payment_cancel,
    payment_close_dispute,
    payment_refund,
    payment_retry_start,
    payment_review_decide,
)
from payments.webhooks.inbox import webhook_process


def _retry(request: HttpRequest, payment: PaymentTransaction) -> tuple[Any, str, int]:
    """Retry the payment's order and open the new attempt with its provider: (the new
    attempt's id or None, a message, its level). A provider refusing or not answering after
    the attempt committed still leaves the new attempt to show."""
    try:
        new, _result = payment_retry_start(order_id=payment.order_id, actor=admin_actor(request))
    except DomainError as exc:
        new_id = exc.details.get("transaction_id")
        if new_id is None:
            return None, f"{exc.message} ({exc.code})", messages.ERROR
        new = PaymentTransaction.objects.get(pk=new_id)
        text = f"New attempt {new.id} is {new.status}: {exc.message} ({exc.code})."
        return new.id, text, messages.WARNING
    new.refresh_from_db()
    return new.id, f"New attempt {new.id} started ({new.status}).", messages.SUCCESS


PERM_REFUND = "payments.refund_payment"
PERM_REVIEW = "payments.review_payment"
PERM_STATUS = "payments.update_payment_status"


def admin_actor(request: HttpRequest) -> Actor:
    return Actor.for_admin(request.user, reference=f"admin:{request.path}"[:255])


def provider_link(payment: PaymentTransaction) -> str:
    if payment.transaction_hash:
        url = explorer_tx_url(payment.chain_id, payment.transaction_hash)
        short = f"{payment.transaction_hash[:10]}…{payment.transaction_hash[-6:]}"
        if url:
            return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, short)
        return short
    if payment.payment_intent_id:
        url = stripe_payment_url(payment.payment_intent_id)
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', url, payment.payment_intent_id
        )
    return "-"


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
class PaymentTransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
    inlines: list[Any] = [RefundInline]  # receipts.admin adds the receipts inline
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
            for hook in self.object_tool_hooks:
                tool = hook(self, request, obj)
                if tool:
                    tools.append(tool)
        extra_context = {**(extra_context or {}), "payment_tools": tools}
        return super().change_view(request, object_id, form_url, extra_context)

    #: Callables (admin, request, payment) -> (id, label, url) | None; receipts adds its own.
    object_tool_hooks: list[Any] = []

    # --- action pages -----------------------------------------------------------------------
    def _payment(self, request: HttpRequest, object_id: Any) -> PaymentTransaction:
        obj = self.get_object(request, str(object_id))
        if obj is None:
            raise Http404
        return obj

    def _done(self, request: HttpRequest, payment: PaymentTransaction) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:payments_paymenttransaction_change", args=[payment.pk])
        )

    def _render(
        self, request: HttpRequest, payment: PaymentTransaction, title: str, form: Any, **extra: Any
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "payment": payment,
            "form": form,
            "payment_url": reverse("admin:payments_paymenttransaction_change", args=[payment.pk]),
            **extra,
        }
        return TemplateResponse(request, "admin/payments/action_form.html", context)

    def refund_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        self._require(request, PERM_REFUND)
        payment = self._payment(request, object_id)
        form = RefundForm(request.POST or None, payment=payment)
        if request.method == "POST" and form.is_valid():
            try:
                refund = payment_refund(
                    order_id=payment.order_id,
                    payment_id=payment.id,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    actor=admin_actor(request),
                )
            except DomainError as exc:
                form.add_error(None, f"{exc.message} ({exc.code})")
            else:
                messages.success(
                    request,
                    f"Refund of {format_amount(refund.amount, refund.currency)} "
                    f"{refund.currency} is {refund.status}.",
                )
                return self._done(request, payment)
        return self._render(
            request,
            payment,
            f"Refund payment {str(payment.id)[:8]}",
            form,
            submit_label="Refund",
            facts=[
                ("Paid", f"{format_amount(payment.amount, payment.currency)} {payment.currency}"),
                (
                    "Already refunded",
                    f"{format_amount(payment.refunded_amount, payment.currency)} "
                    f"{payment.currency}",
                ),
                (
                    "Refundable",
                    f"{format_amount(payment.refundable_amount, payment.currency)} "
                    f"{payment.currency}",
                ),
            ],
        )

    def review_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        self._require(request, PERM_REVIEW)
        payment = self._payment(request, object_id)
        form = ReviewForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            approve = form.cleaned_data["decision"] == "approve"
            try:
                payment_review_decide(
                    payment_id=payment.id,
                    approve=approve,
                    note=form.cleaned_data["note"],
                    actor=admin_actor(request),
                )
            except DomainError as exc:
                form.add_error(None, f"{exc.message} ({exc.code})")
            else:
                messages.success(request, "Approved." if approve else "Rejected.")
                return self._done(request, payment)
        reasons = [r.get("reason", "") for r in payment.review_reasons]
        return self._render(
            request,
            payment,
            f"Review payment {str(payment.id)[:8]}",
            form,
            submit_label="Decide",
            facts=[("Flagged for", ", ".join(reasons) or "-")],
        )

    def retry_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        self._require(request, PERM_STATUS)
        payment = self._payment(request, object_id)
        form = NoteForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            new_id, text, level = _retry(request, payment)
            if new_id is None:
                form.add_error(None, text)
            else:
                messages.add_message(request, level, text)
                return HttpResponseRedirect(
                    reverse("admin:payments_paymenttransaction_change", args=[new_id])
                )
        return self._render(
            request, payment, f"Retry payment {str(payment.id)[:8]}", form, submit_label="Retry"
        )

    def cancel_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        self._require(request, PERM_STATUS)
        payment = self._payment(request, object_id)
        form = NoteForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                payment = payment_cancel(
                    payment_id=payment.id,
                    actor=admin_actor(request),
                    reason=form.cleaned_data["note"],
                )
            except DomainError as exc:
                form.add_error(None, f"{exc.message} ({exc.code})")
            else:
                messages.success(request, f"Payment is {payment.status}.")
                return self._done(request, payment)
        return self._render(
            request, payment, f"Cancel payment {str(payment.id)[:8]}", form, submit_label="Cancel"
        )

    def resolve_dispute_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        """Escrow: the arbiter's ``escrow_resolve`` (all to one side, sent on chain; the payment
        follows when the transactions are final). Other methods: ``payment_close_dispute``."""
        self._require(request, PERM_REFUND)
        payment = self._payment(request, object_id)
        form = DisputeResolutionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            release = form.cleaned_data["outcome"] == "release"
            actor = admin_actor(request)
            try:
                if payment.method == PaymentMethod.ESCROW:
                    held = sub(payment.amount, payment.refunded_amount)
                    sent = escrow_resolve(
                        order_id=payment.order_id,
                        buyer_amount=0 if release else held,
                        seller_amount=held if release else 0,
                        actor=actor,
                    )
                    done = f"Resolution sent on chain ({len(sent)} transaction(s))."
                else:
                    payment = payment_close_dispute(
                        payment_id=payment.id,
                        actor=actor,
                        outcome="won" if release else "lost",
                        details={"note": form.cleaned_data["note"]},
                    )
                    done = f"Dispute resolved: payment is {payment.status}."
            except DomainError as exc:
                form.add_error(None, f"{exc.message} ({exc.code})")
            else:
                messages.success(request, done)
                return self._done(request, payment)
        return self._render(
            request,
            payment,
            f"Resolve the dispute on payment {str(payment.id)[:8]}",
            form,
            submit_label="Resolve",
        )

    # --- changelist actions (same pages, same services) -------------------------------------
    def _one(self, request: HttpRequest, queryset: Any, name: str) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one payment.", messages.WARNING)
            return None
        return HttpResponseRedirect(self._url(name, queryset.first().pk))

    @admin.action(description="Refund the selected payment…", permissions=["refund"])
    def refund_action(self, request, queryset):  # type: ignore[no-untyped-def]
        return self._one(request, queryset, "refund")

    @admin.action(
        description="Resolve the dispute on the selected payment…", permissions=["refund"]
    )
    def resolve_dispute_action(self, request, queryset):  # type: ignore[no-untyped-def]
        return self._one(request, queryset, "resolve_dispute")

    @admin.action(description="Retry the selected failed payments", permissions=["status"])
    def retry_action(self, request, queryset):  # type: ignore[no-untyped-def]
        for payment in queryset:
            _new_id, text, level = _retry(request, payment)
            self.message_user(request, f"{payment.id}: {text}", level)

    @admin.action(description="Cancel the selected pending payments", permissions=["status"])
    def cancel_action(self, request, queryset):  # type: ignore[no-untyped-def]
        for payment in queryset:
            try:
                payment_cancel(payment_id=payment.id, actor=admin_actor(request))
            except DomainError as exc:
                self.message_user(request, f"{payment.id}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{payment.id}: cancelled.")

    def _decide(self, request, queryset, approve: bool):  # type: ignore[no-untyped-def]
        form = NoteForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            for payment in queryset:
                try:
                    payment_review_decide(
                        payment_id=payment.id,
                        approve=approve,
                        note=form.cleaned_data["note"],
                        actor=admin_actor(request),
                    )
                except DomainError as exc:
                    self.message_user(request, f"{payment.id}: {exc.message}", messages.ERROR)
                else:
                    self.message_user(
                        request, f"{payment.id}: {'approved' if approve else 'rejected'}."
                    )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{'Approve' if approve else 'Reject'} {queryset.count()} flagged payment(s)",
            "form": form,
            "queryset": queryset,
            "action": request.POST.get("action"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "submit_label": "Approve" if approve else "Reject",
        }
        return TemplateResponse(request, "admin/payments/review_decide.html", context)

    @admin.action(description="Approve the selected flagged payments…", permissions=["review"])
    def approve_action(self, request, queryset):  # type: ignore[no-untyped-def]
        return self._decide(request, queryset, approve=True)

    @admin.action(description="Reject the selected flagged payments…", permissions=["review"])
    def reject_action(self, request, queryset):  # type: ignore[no-untyped-def]
        return self._decide(request, queryset, approve=False)

    # --- analytics --------------------------------------------------------------------------
    def analytics_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied
        form = PeriodForm(request.GET or None)
        error = ""
        figures = None
        try:
            period = analytics_period(request.GET.get("start"), request.GET.get("end"))
        except DomainError as exc:
            error = exc.message
            period = analytics_period()
        figures = payment_analytics(period=period)
        if request.GET.get("format") == "csv" and not error:
            response = HttpResponse(payment_analytics_csv(figures), content_type="text/csv")
            response["Content-Disposition"] = (
                f'attachment; filename="payments-{period.start}-{period.end}.csv"'
            )
            return response
        if not request.GET:
            form = PeriodForm(initial={"start": period.start, "end": period.end})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Payment analytics",
            "form": form,
            "error": error,
            "figures": figures,
            "charts": analytics_charts(figures),
            "csv_query": f"start={period.start}&end={period.end}&format=csv",
            "json_url": f"{reverse('receipts:analytics')}?start={period.start}&end={period.end}",
        }
        return TemplateResponse(request, "admin/payments/analytics.html", context)


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


class FeeRuleForm(forms.ModelForm):
    """Checks a rule with the same rules as the service, so bad input is a form error."""

    class Meta:
        model = FeeRule
        fields = ("method", "currency", "percentage", "fixed_amount", "minimum_fee", "maximum_fee")

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        if self.errors:
            return data
        try:
            fee_rule_clean(**{name: data.get(name) for name in self.Meta.fields})
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        return data


@admin.register(FeeRule)
class FeeRuleAdmin(admin.ModelAdmin):
    """Saving a rule creates its next version; the old version stays for the payments that
    used it."""

    list_display = (
        "method",
        "currency",
        "version",
        "percentage",
        "fixed_amount",
        "minimum_fee",
        "maximum_fee",
        "is_active",
        "created_at",
    )
    list_filter = ("method", "is_active")
    form = FeeRuleForm
    fields = ("method", "currency", "percentage", "fixed_amount", "minimum_fee", "maximum_fee")

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        from payments.services.fees import fee_rule_update

        new = fee_rule_update(
            method=obj.method,
            currency=obj.currency,
            percentage=obj.percentage,
            fixed_amount=obj.fixed_amount,
            minimum_fee=obj.minimum_fee,
            maximum_fee=obj.maximum_fee,
            actor=Actor.for_admin(request.user),
        )
        obj.pk = new.pk
        obj.version = new.version

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
