"""Receipts in the back office, and the receipts inline and regenerate tool on payments."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from common.admin import ReadOnlyAdminMixin, StaffInlineMixin
from common.errors import DomainError
from payments.admin.base import admin_actor
from payments.admin.payments import PaymentTransactionAdmin
from payments.models import PaymentTransaction
from receipts.models import PaymentReceipt
from receipts.services import receipt_issue_or_regenerate, receipt_regenerate

PERM_REGENERATE = "receipts.change_paymentreceipt"


def pdf_link(obj: PaymentReceipt) -> str:
    if not obj.pdf:
        return "-"
    url = reverse("receipts:pdf", args=[obj.pk])
    return format_html('<a href="{}" class="receipt-pdf">{}.pdf</a>', url, obj.number)


class PaymentReceiptInline(StaffInlineMixin, admin.TabularInline):
    model = PaymentReceipt
    fk_name = "payment"
    extra = 0
    fields = ("number", "kind", "amount", "currency", "issued_at", "sha256", "pdf_download")
    readonly_fields = fields
    verbose_name_plural = "receipts and credit notes"

    @admin.display(description="PDF")
    def pdf_download(self, obj: PaymentReceipt) -> str:
        return pdf_link(obj)


@admin.register(PaymentReceipt)
class PaymentReceiptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("number", "kind", "payment_link", "amount", "currency", "issued_at", "pdf_")
    list_filter = ("kind", "currency", "issued_at")
    search_fields = ("number", "sha256")
    date_hierarchy = "issued_at"
    readonly_fields = (
        "number",
        "kind",
        "payment_link",
        "refund",
        "order_id",
        "amount",
        "currency",
        "issued_at",
        "sha256",
        "pdf_",
    )
    fields = readonly_fields
    actions = ["regenerate_action"]

    def has_regenerate_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(PERM_REGENERATE)

    def changelist_view(self, request, extra_context=None):  # type: ignore[no-untyped-def]
        posted = request.POST.get("action") if request.method == "POST" else None
        if posted and posted in self.actions and posted not in self.get_actions(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    @admin.display(description="payment")
    def payment_link(self, obj: PaymentReceipt) -> str:
        url = reverse("admin:payments_paymenttransaction_change", args=[obj.payment_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.payment_id)[:8])

    @admin.display(description="PDF")
    def pdf_(self, obj: PaymentReceipt) -> str:
        return pdf_link(obj)

    @admin.action(description="Regenerate the selected receipts' PDFs", permissions=["regenerate"])
    def regenerate_action(self, request, queryset):  # type: ignore[no-untyped-def]
        for receipt in queryset:
            done = receipt_regenerate(receipt_id=receipt.id, actor=admin_actor(request))
            same = "unchanged" if done.sha256 == receipt.sha256 else "changed"
            self.message_user(request, f"{done.number}: rendered again, hash {same}.")


# --- on the payment's page: its receipts and a "Regenerate receipt" tool ---------------------


def _regenerate_tool(model_admin, request, payment):  # type: ignore[no-untyped-def]
    if not request.user.has_perm(PERM_REGENERATE) or payment.confirmed_at is None:
        return None
    url = reverse("admin:payments_paymenttransaction_regenerate_receipt", args=[payment.pk])
    return ("regenerate", "Regenerate receipt", url)


def regenerate_receipt_view(request, object_id):  # type: ignore[no-untyped-def]
    """POST: issue the payment's receipt if it has none, else render its PDF again."""
    if not request.user.is_staff or not request.user.has_perm(PERM_REGENERATE):
        raise PermissionDenied
    back = reverse("admin:payments_paymenttransaction_change", args=[object_id])
    if request.method != "POST":
        payment_admin = admin.site.get_model_admin(PaymentTransaction)
        payment = payment_admin.payment_for(request, object_id)
        return payment_admin.render_action_form(
            request,
            payment,
            f"Regenerate the receipt of payment {str(payment.id)[:8]}",
            forms.Form(),
            submit_label="Regenerate receipt",
            facts=[("Receipts", ", ".join(r.number for r in payment.receipts.all()) or "none")],
        )
    try:
        receipt, created = receipt_issue_or_regenerate(
            payment_id=object_id, actor=admin_actor(request)
        )
    except DomainError as exc:
        messages.error(request, f"{exc.message} ({exc.code})")
    else:
        messages.success(
            request, f"Receipt {receipt.number} {'issued' if created else 'rendered again'}."
        )
    return HttpResponseRedirect(back)


def _regenerate_urls(model_admin):  # type: ignore[no-untyped-def]
    return [
        path(
            "<uuid:object_id>/regenerate-receipt/",
            model_admin.admin_site.admin_view(regenerate_receipt_view),
            name="payments_paymenttransaction_regenerate_receipt",
        )
    ]


PaymentTransactionAdmin.extension.inlines.append(PaymentReceiptInline)
PaymentTransactionAdmin.extension.object_tools.append(_regenerate_tool)
PaymentTransactionAdmin.extension.urls.append(_regenerate_urls)
