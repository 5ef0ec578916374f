"""The back office in a real browser: review queue, partial refund, receipt download,
permission-less staff, analytics charts."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction

from orders.audit import Actor
from payments.models import PaymentTransaction, Refund
from payments.services.core import lock_payment, payment_flag
from receipts.models import PaymentReceipt
from tests.e2e.browser.conftest import login
from tests.factories import OrderFactory, UserFactory
from tests.payflows import fail_payment, paid_card_payment, paid_chain_payment, start_payment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def grant(user, *names):  # type: ignore[no-untyped-def]
    for name in names:
        user.user_permissions.add(Permission.objects.get(codename=name))


def flag(payment, reason):  # type: ignore[no-untyped-def]
    with transaction.atomic():
        _, locked = lock_payment(payment.id)
        payment_flag(locked, reason, actor=Actor.for_job("monitor"))


@pytest.fixture
def support(db):
    user = UserFactory(username="support", is_staff=True)
    grant(
        user, "view_paymenttransaction", "refund_payment", "review_payment", "update_payment_status"
    )
    return user


@pytest.fixture
def clerk(db):
    user = UserFactory(username="clerk", is_staff=True)
    grant(user, "view_paymenttransaction")
    return user


def test_support_reviews_refunds_and_downloads_the_receipt(page, shot, support):
    late = paid_card_payment(OrderFactory(amount=Decimal("80.00")), pi="pi_3LateBrowser")
    flag(late, "late_payment")
    flag(paid_chain_payment(OrderFactory()), "amount_mismatch")
    receipt = PaymentReceipt.objects.get(payment=late, kind="receipt")  # issued on commit

    login(page, "support")
    page.goto(f"{page.base}/admin/payments/flaggedpayment/")
    assert page.locator("#result_list tbody tr").count() == 2
    page.click("#changelist-filter >> text=Late payment")
    page.wait_for_url("**reason=late_payment**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    shot(page, "review_queue_filtered")

    rows.first.locator("th a, td a").first.click()  # opens the payment
    page.wait_for_url(f"**/paymenttransaction/{late.pk}/change/")
    assert page.locator("#tool-refund").is_visible()
    shot(page, "payment_change")

    page.click("#tool-refund")
    assert page.input_value("#id_amount") == "80.00"  # the remaining refundable
    page.fill("#id_amount", "30.00")
    page.fill("#id_reason", "one item arrived broken")
    shot(page, "refund_form")
    page.click("#action-submit")
    page.wait_for_url(f"**/paymenttransaction/{late.pk}/change/")
    assert "Refund of 30.00 USD is succeeded" in page.locator(".messagelist").inner_text()
    refunds = page.locator("#refunds-group").inner_text()
    assert "30.00" in refunds and "one item arrived broken" in refunds
    trail = page.locator("#audit-trail").inner_text()
    assert "refund" in trail and "request" in trail and "admin: support" in trail
    shot(page, "payment_after_refund")

    refund = Refund.objects.get(payment=late)
    assert refund.amount == Decimal("30.00") and refund.requested_by == support
    assert PaymentTransaction.objects.get(pk=late.pk).status == "partially_refunded"

    link = page.locator(f"a.receipt-pdf:has-text('{receipt.number}')")
    with page.expect_download() as info:
        link.click()
    download = info.value
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF")
    assert hashlib.sha256(data).hexdigest() == receipt.sha256
    assert download.suggested_filename == f"{receipt.number}.pdf"


def test_staff_without_refund_permission_sees_no_refund(page, shot, clerk):
    payment = paid_card_payment(OrderFactory(), pi="pi_3ClerkView")
    login(page, "clerk")
    page.goto(f"{page.base}/admin/payments/paymenttransaction/{payment.pk}/change/")
    page.wait_for_selector("#audit-trail")
    assert page.locator("#tool-refund").count() == 0
    shot(page, "payment_change_no_refund_permission")
    page.goto(f"{page.base}/admin/payments/paymenttransaction/")
    options = page.locator("select[name=action] option").all_inner_texts()
    assert not any("Refund" in o for o in options)
    shot(page, "payment_list_no_refund_permission")

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    direct = page.request.post(
        f"{page.base}/admin/payments/paymenttransaction/{payment.pk}/refund/",
        form={"amount": "1.00", "reason": "x", "csrfmiddlewaretoken": token},
    )
    assert direct.status == 403
    action = page.request.post(
        f"{page.base}/admin/payments/paymenttransaction/",
        form={
            "action": "refund_action",
            "_selected_action": str(payment.pk),
            "csrfmiddlewaretoken": token,
        },
    )
    assert action.status == 403
    assert not Refund.objects.exists()


def test_analytics_page_shows_its_charts(page, shot, staff):
    for i in range(3):
        paid_card_payment(OrderFactory(), pi=f"pi_3Chart{i}")
    fail_payment(start_payment(OrderFactory()))
    paid_chain_payment(OrderFactory(currency="ETH", amount=Decimal("2")))
    login(page, "staff")
    page.goto(f"{page.base}/admin/payments/paymenttransaction/")
    page.click("#tool-analytics")
    page.wait_for_selector("#charts svg")
    for chart in (
        "chart-success-rate",
        "chart-confirmation-time",
        "chart-refund-rate",
        "chart-fees-usd",
    ):
        svg = page.locator(f"svg#{chart}")
        assert svg.is_visible()
        assert svg.locator("rect.bar").count() >= 1
    box = page.locator("svg#chart-success-rate rect.bar").first.bounding_box()
    assert box and box["width"] > 50  # fiat: 3 of 4 succeeded draws a real bar
    assert "75.0 %" in page.locator("svg#chart-success-rate").inner_html()
    shot(page, "analytics")
    with page.expect_download() as info:
        page.click("#csv-export")
    assert "fiat,4,3,1,0,0.7500" in Path(info.value.path()).read_text()
