"""Permissions and helpers shared by the payments back office."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.html import format_html

from orders.audit import Actor
from payments.links import explorer_tx_url, stripe_payment_url
from payments.models import (
    PaymentTransaction,
)

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
