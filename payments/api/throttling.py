"""Per-user rate limits on the payment, retry and refund endpoints (429 with Retry-After).

Rates come from ``settings.API_THROTTLE_RATES`` and are read on every request, so a changed
setting (or a test's override) applies at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle


class PaymentRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (per user, per ``throttle_scope``) with rates from settings."""

    @property
    def THROTTLE_RATES(self) -> dict[str, Any]:  # type: ignore[override]
        return settings.API_THROTTLE_RATES


class OrderPaymentThrottle(PaymentRateThrottle):
    """``POST /api/orders`` with a ``payment_method`` opens a payment (and a provider object):
    it counts against the same ``payments`` bucket as ``POST .../payment-transactions``, so
    the limit cannot be sidestepped by creating orders. Other requests pass."""

    def allow_request(self, request: Any, view: Any) -> bool:
        data = request.data if request.method == "POST" else None
        if not isinstance(data, dict) or not data.get("payment_method"):
            return True
        view.throttle_scope = "payments"
        return super().allow_request(request, view)


class CallerRateThrottle(SimpleRateThrottle):
    """One bucket per caller: the user when authenticated, else the client address as the
    proxy setting (``NUM_PROXIES``) defines it, so a rotating X-Forwarded-For does not make
    new callers. Subclasses name their ``scope``; rates come from ``API_THROTTLE_RATES``."""

    @property
    def THROTTLE_RATES(self) -> dict[str, Any]:  # type: ignore[override]
        return settings.API_THROTTLE_RATES

    def get_cache_key(self, request: Any, view: Any) -> str:
        user = getattr(request, "user", None)
        who = f"user-{user.pk}" if user is not None and user.is_authenticated else None
        return self.cache_format % {"scope": self.scope, "ident": who or self.get_ident(request)}


class ReceiptVerifyThrottle(CallerRateThrottle):
    scope = "receipt_verify"
