"""Per-user rate limits on the payment, retry and refund endpoints (429 with Retry-After).

Rates come from ``settings.API_THROTTLE_RATES`` and are read on every request, so a changed
setting (or a test's override) applies at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle


class PaymentRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (per user, per ``throttle_scope``) with rates from settings."""

    @property
    def THROTTLE_RATES(self) -> dict[str, Any]:  # type: ignore[override]
        return settings.API_THROTTLE_RATES
