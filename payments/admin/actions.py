"""The staff actions on a payment (refund, review, retry, cancel, resolve a dispute): their
form pages and list actions, each calling one service."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from common.errors import DomainError
from common.money import format_amount
from payments.admin.base import PERM_REFUND, PERM_REVIEW, PERM_STATUS, admin_actor
from payments.admin.forms import DisputeResolutionForm, NoteForm, RefundForm, ReviewForm
from payments.models import (
    PaymentTransaction,
)
from payments.services.arbitration import payment_resolve_dispute
from payments.services.payments import payment_cancel, payment_retry_start
from payments.services.refunds import payment_refund
from payments.services.reviews import payment_review_decide


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


class PaymentActionsMixin:
    """The action pages and list actions of the payments admin."""

    def payment_for(self, request: HttpRequest, object_id: Any) -> PaymentTransaction:
        obj = self.get_object(request, str(object_id))
        if obj is None:
            raise Http404
        return obj

    def _done(self, request: HttpRequest, payment: PaymentTransaction) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:payments_paymenttransaction_change", args=[payment.pk])
        )

    def render_action_form(
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
        payment = self.payment_for(request, object_id)
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
        return self.render_action_form(
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
        payment = self.payment_for(request, object_id)
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
        return self.render_action_form(
            request,
            payment,
            f"Review payment {str(payment.id)[:8]}",
            form,
            submit_label="Decide",
            facts=[("Flagged for", ", ".join(reasons) or "-")],
        )

    def retry_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        self._require(request, PERM_STATUS)
        payment = self.payment_for(request, object_id)
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
        return self.render_action_form(
            request, payment, f"Retry payment {str(payment.id)[:8]}", form, submit_label="Retry"
        )

    def cancel_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        self._require(request, PERM_STATUS)
        payment = self.payment_for(request, object_id)
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
        return self.render_action_form(
            request, payment, f"Cancel payment {str(payment.id)[:8]}", form, submit_label="Cancel"
        )

    def resolve_dispute_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        """One service for every method (``payment_resolve_dispute``)."""
        self._require(request, PERM_REFUND)
        payment = self.payment_for(request, object_id)
        form = DisputeResolutionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                payment, done = payment_resolve_dispute(
                    payment_id=payment.id,
                    release=form.cleaned_data["outcome"] == "release",
                    actor=admin_actor(request),
                    note=form.cleaned_data["note"],
                )
            except DomainError as exc:
                form.add_error(None, f"{exc.message} ({exc.code})")
            else:
                messages.success(request, done)
                return self._done(request, payment)
        return self.render_action_form(
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
