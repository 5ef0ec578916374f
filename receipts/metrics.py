"""The receipt backlog on /metrics (registered with ops in ReceiptsConfig.ready)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from receipts.selectors import payments_without_receipt


class ReceiptBacklogCollector:
    def collect(self) -> Iterator[Metric]:
        missing = payments_without_receipt().aggregate(
            n=Count("id", distinct=True), oldest=Min("confirmed_at")
        )
        oldest = missing["oldest"]
        yield GaugeMetricFamily(
            "orderpay_receipt_backlog",
            "Payments that took money and have no receipt yet.",
            value=missing["n"],
        )
        yield GaugeMetricFamily(
            "orderpay_receipt_backlog_oldest_age_seconds",
            "Age since confirmation of the oldest payment without a receipt.",
            value=max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0,
        )
