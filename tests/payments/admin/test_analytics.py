"""Analytics figures for a period, the admin page with its charts and CSV, the JSON endpoint."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from orders.audit import Actor
from payments.analytics import analytics_period, payment_analytics, percentile
from payments.models import PaymentTransaction
from payments.services.fees import fee_rule_update
from payments.services.refunds import payment_refund
from tests.factories import OrderFactory
from tests.payflows import fail_payment, paid_card_payment, paid_chain_payment, start_payment

pytestmark = pytest.mark.django_db


def backdate(payment, seconds_to_confirm: int):  # type: ignore[no-untyped-def]
    """Give a payment a known time to confirmation (created that long before confirmation)."""
    PaymentTransaction.objects.filter(pk=payment.pk).update(
        created_at=payment.confirmed_at - timedelta(seconds=seconds_to_confirm)
    )


@pytest.fixture
def figures_data(staff):
    fee_rule_update(
        method="fiat",
        currency="USD",
        percentage=Decimal("2.9"),
        fixed_amount=Decimal("0.30"),
        minimum_fee=None,
        maximum_fee=None,
        actor=Actor.system(),
    )
    cards = [paid_card_payment(OrderFactory(), pi=f"pi_{i}") for i in range(3)]
    for p, secs in zip(cards, (10, 20, 60), strict=True):
        backdate(p, secs)
    fail_payment(start_payment(OrderFactory()))
    start_payment(OrderFactory())  # open: counts as an attempt only
    chain = paid_chain_payment(OrderFactory(currency="ETH", amount=Decimal("1.5")))
    backdate(chain, 120)
    payment_refund(order_id=cards[0].order_id, actor=Actor.for_admin(staff), amount="10.00")
    return cards, chain


def test_figures_per_method(figures_data):
    figures = payment_analytics(period=analytics_period())
    fiat = next(m for m in figures["methods"] if m["method"] == "fiat")
    assert fiat["attempts"] == 5 and fiat["succeeded"] == 3 and fiat["unsuccessful"] == 1
    assert fiat["open"] == 1
    assert fiat["success_rate"] == "0.7500"  # 3 of the 4 finished
    assert fiat["confirmation_seconds_avg"] == "30.0"
    assert fiat["confirmation_seconds_p95"] == "56.0"  # 20 + 0.9 * (60 - 20)
    assert fiat["refund_rate"] == "0.3333"
    crypto = next(m for m in figures["methods"] if m["method"] == "crypto")
    assert crypto["success_rate"] == "1.0000" and crypto["confirmation_seconds_p95"] == "120.0"
    escrow = next(m for m in figures["methods"] if m["method"] == "escrow")
    assert escrow["success_rate"] is None and escrow["attempts"] == 0
    fees = {(f["method"], f["currency"]): f for f in figures["fees"]}
    assert fees[("fiat", "USD")]["fee_total"] == "9.60"  # 3 x 3.20
    assert fees[("fiat", "USD")]["refunded_total"] == "10.00"
    assert fees[("crypto", "ETH")]["fee_total"] == "0.000000000000000000"


def test_period_bounds_exclude_other_days(figures_data):
    old = timezone.localdate() - timedelta(days=400)
    figures = payment_analytics(period=analytics_period(old, old + timedelta(days=1)))
    assert all(m["attempts"] == 0 for m in figures["methods"]) and figures["fees"] == []


def test_percentile_matches_linear_interpolation():
    assert percentile([], Decimal("0.95")) is None
    assert percentile([Decimal(5)], Decimal("0.95")) == Decimal(5)
    values = [Decimal(v) for v in range(1, 101)]
    assert percentile(values, Decimal("0.95")) == Decimal("95.05")


def test_admin_page_draws_charts_and_exports_csv(client, staff, figures_data):
    client.force_login(staff)
    page_url = reverse("admin:payments_paymenttransaction_analytics")
    page = client.get(page_url)
    assert page.status_code == 200
    html = page.content.decode()
    for chart in (
        "chart-success-rate",
        "chart-confirmation-time",
        "chart-refund-rate",
        "chart-fees-usd",
        "chart-fees-eth",
    ):
        assert f'id="{chart}"' in html
    assert "<script" not in html.split('id="charts"')[1].split("</div>")[0]
    assert "75.0 %" in html and "9.60 USD" in html
    drawn = "".join(page.context["charts"])
    assert "href" not in drawn and "src=" not in drawn  # nothing fetched from outside
    export = client.get(page_url, {"format": "csv"})
    assert export["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert ["fiat", "5", "3", "1", "1", "0.7500", "30.0", "56.0", "0.3333"] in rows
    assert ["fiat", "USD", "3", "9.60", "10.00"] in rows
    bad = client.get(page_url, {"start": "2026-13-01"})
    assert bad.status_code == 200 and b"must be a date" in bad.content


def test_json_endpoint_for_staff_only(staff, buyer, figures_data):
    client = APIClient()
    client.force_authenticate(buyer)
    assert client.get("/api/analytics/payments").status_code == 403
    client.force_authenticate(staff)
    body = client.get("/api/analytics/payments").json()
    assert body == payment_analytics(period=analytics_period())
    bad = client.get("/api/analytics/payments", {"start": "2026-02-01", "end": "2026-01-01"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_period"


def test_analytics_page_needs_staff(client, buyer):
    client.force_login(buyer)
    response = client.get(reverse("admin:payments_paymenttransaction_analytics"))
    assert response.status_code == 302  # to the admin login
