"""Payment figures for a period: success rate per method, time to confirmation, fees, refunds.

Payments count in the period of their ``created_at``. Amounts are summed exactly in Python
(Decimal), never as floats; rates and durations are reported as decimal strings.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils import timezone

from common.errors import ValidationFailed
from common.money import add, format_amount
from payments.models import (
    PAID_STATES,
    UNSUCCESSFUL_STATES,
    PaymentMethod,
    PaymentTransaction,
    Refund,
    RefundStatus,
)

MAX_PERIOD_DAYS = 366
DEFAULT_PERIOD_DAYS = 30


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        tz = timezone.get_current_timezone()
        return (
            datetime.combine(self.start, time.min, tzinfo=tz),
            datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=tz),
        )


def analytics_period(start: Any = None, end: Any = None) -> Period:
    """Parse ``start``/``end`` (YYYY-MM-DD, inclusive); default: the last 30 days."""

    def parse(value: Any, name: str) -> date | None:
        if value in (None, ""):
            return None
        if isinstance(value, date):
            return value
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)):
                raise ValueError(value)
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValidationFailed(
                f"{name} must be a date (YYYY-MM-DD).", code="invalid_period"
            ) from None

    today = timezone.localdate()
    end_d = parse(end, "end") or today
    start_d = parse(start, "start") or end_d - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if start_d > end_d:
        raise ValidationFailed("start is after end.", code="invalid_period")
    if (end_d - start_d).days >= MAX_PERIOD_DAYS:
        raise ValidationFailed(
            f"A period is at most {MAX_PERIOD_DAYS} days.", code="invalid_period"
        )
    return Period(start_d, end_d)


def _rate(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def percentile(values: list[Decimal], q: Decimal) -> Decimal | None:
    """Linear interpolation between closest ranks (PostgreSQL's ``percentile_cont``)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lower = int(pos)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (pos - lower)


def _seconds(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def payment_analytics(*, period: Period) -> dict[str, Any]:
    """The figures for ``period``, per method (and per method and currency for money)."""
    lo, hi = period.bounds
    rows = list(
        PaymentTransaction.objects.filter(created_at__gte=lo, created_at__lt=hi).values_list(
            "id", "method", "currency", "status", "fee_amount", "created_at", "confirmed_at"
        )
    )
    refunded_ids = set(
        Refund.objects.filter(
            status=RefundStatus.SUCCEEDED, payment__created_at__gte=lo, payment__created_at__lt=hi
        ).values_list("payment_id", flat=True)
    )
    refund_totals: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    for method, currency, amount in Refund.objects.filter(
        status=RefundStatus.SUCCEEDED, payment__created_at__gte=lo, payment__created_at__lt=hi
    ).values_list("payment__method", "currency", "amount"):
        refund_totals[(method, currency)].append(amount)

    methods: dict[str, dict[str, Any]] = {}
    fees: dict[tuple[str, str], dict[str, Any]] = {}
    for method in PaymentMethod.values:
        mine = [r for r in rows if r[1] == method]
        paid = [r for r in mine if r[3] in PAID_STATES]
        unsuccessful = [r for r in mine if r[3] in UNSUCCESSFUL_STATES]
        durations = [Decimal(str((r[6] - r[5]).total_seconds())) for r in paid if r[6] is not None]
        average = sum(durations, Decimal(0)) / len(durations) if durations else None
        rate = _rate(len(paid), len(paid) + len(unsuccessful))
        refund_rate = _rate(sum(r[0] in refunded_ids for r in paid), len(paid))
        methods[method] = {
            "method": method,
            "attempts": len(mine),
            "succeeded": len(paid),
            "unsuccessful": len(unsuccessful),
            "open": len(mine) - len(paid) - len(unsuccessful),
            "success_rate": None if rate is None else str(rate),
            "confirmation_seconds_avg": _seconds(average),
            "confirmation_seconds_p95": _seconds(percentile(durations, Decimal("0.95"))),
            "refund_rate": None if refund_rate is None else str(refund_rate),
        }
        for r in paid:
            key = (method, r[2])
            entry = fees.setdefault(key, {"fees": [], "count": 0})
            entry["fees"].append(r[4])
            entry["count"] += 1
    fee_rows = []
    for (method, currency), entry in sorted(fees.items()):
        refunded = add(*refund_totals.get((method, currency), []))
        fee_rows.append(
            {
                "method": method,
                "currency": currency,
                "payments": entry["count"],
                "fee_total": format_amount(add(*entry["fees"]), currency),
                "refunded_total": format_amount(refunded, currency),
            }
        )
    return {
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "methods": list(methods.values()),
        "fees": fee_rows,
    }


def payment_analytics_csv(figures: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["period_start", figures["period"]["start"], "period_end", figures["period"]["end"]])
    w.writerow([])
    cols = [
        "method",
        "attempts",
        "succeeded",
        "unsuccessful",
        "open",
        "success_rate",
        "confirmation_seconds_avg",
        "confirmation_seconds_p95",
        "refund_rate",
    ]
    w.writerow(cols)
    for m in figures["methods"]:
        w.writerow(["" if m[c] is None else m[c] for c in cols])
    w.writerow([])
    fee_cols = ["method", "currency", "payments", "fee_total", "refunded_total"]
    w.writerow(fee_cols)
    for f in figures["fees"]:
        w.writerow([f[c] for c in fee_cols])
    return out.getvalue()
