"""Fee rules as tables: percentage, fixed part, limits, rounding at the currency's exponent,
lookup, versioning and the rules' own validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.errors import ValidationFailed
from orders.audit import Actor
from payments.models import FeeRule
from payments.services.fees import compute_fee, fee_rule_for, fee_rule_update
from payments.services.payments import payment_create

D = Decimal


def rule(currency="", pct="0", fixed="0", minimum=None, maximum=None):
    return FeeRule(
        method="fiat",
        currency=currency,
        percentage=D(pct),
        fixed_amount=D(fixed),
        minimum_fee=None if minimum is None else D(minimum),
        maximum_fee=None if maximum is None else D(maximum),
    )


@pytest.mark.parametrize(
    ("amount", "currency", "fee_rule", "expected"),
    [
        # percentage only (any currency)
        ("100.00", "USD", rule(pct="2.9"), "2.90"),
        ("10.00", "USD", rule(pct="0"), "0.00"),
        # percentage + fixed in the rule's currency
        ("100.00", "USD", rule("USD", "2.9", "0.30"), "3.20"),
        ("0.01", "USD", rule("USD", "2.9", "0.30"), "0.01"),  # clamped to the amount
        # minimum and maximum
        ("1.00", "USD", rule("USD", "1", minimum="0.50"), "0.50"),
        ("1000.00", "USD", rule("USD", "5", maximum="20.00"), "20.00"),
        ("100.00", "USD", rule("USD", "5", minimum="1.00", maximum="20.00"), "5.00"),
        ("0.20", "USD", rule("USD", "1", minimum="0.50"), "0.20"),  # min above amount: clamp
        # ROUND_HALF_UP at the exponent
        ("0.50", "USD", rule(pct="1"), "0.01"),  # 0.005 -> 0.01
        ("0.49", "USD", rule(pct="1"), "0.00"),  # 0.0049 -> 0.00
        ("1.50", "USD", rule(pct="1.5"), "0.02"),  # 0.0225 -> 0.02
        ("150", "JPY", rule(pct="1"), "2"),  # 1.5 -> 2
        ("149", "JPY", rule(pct="1"), "1"),  # 1.49 -> 1
        ("0.050", "KWD", rule(pct="1"), "0.001"),  # 0.0005 -> 0.001
        ("0.049", "KWD", rule(pct="1"), "0.000"),
        ("0.000000000000000050", "ETH", rule(pct="1"), "0.000000000000000001"),  # 0.5 wei up
        ("0.000000000000000049", "ETH", rule(pct="1"), "0"),
        ("1.234567890123456789", "ETH", rule(pct="0.3"), "0.003703703670370370"),
        # a rule in another currency keeps only its percentage (no foreign fixed part)
        ("100.00", "EUR", rule(pct="2"), "2.00"),
        # no rule: no fee
        ("100.00", "USD", None, "0.00"),
    ],
)
def test_fee_table(amount, currency, fee_rule, expected):
    fee = compute_fee(D(amount), currency, fee_rule)
    assert fee == D(expected)
    assert fee + (D(amount) - fee) == D(amount)


@pytest.mark.django_db
def test_lookup_prefers_the_currency_rule_and_falls_back_to_any_currency(staff):
    actor = Actor.for_admin(staff)
    any_rule = fee_rule_update(method="fiat", percentage="1", actor=actor)
    usd = fee_rule_update(method="fiat", currency="USD", percentage="2", actor=actor)
    assert fee_rule_for("fiat", "USD") == usd
    assert fee_rule_for("fiat", "EUR") == any_rule
    assert fee_rule_for("crypto", "USD") is None
    assert usd.currency == "USD" and usd.percentage == D("2")


@pytest.mark.django_db
def test_update_creates_next_version_and_old_payment_keeps_its_rule(order, actor, staff):
    admin = Actor.for_admin(staff)
    v1 = fee_rule_update(method="fiat", currency="USD", percentage="2.5", actor=admin)
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    assert payment.fee_rule == v1 and payment.fee_amount == D("2.50")

    v2 = fee_rule_update(
        method="fiat", currency="usd", percentage="3", fixed_amount="0.30", actor=admin
    )
    v1.refresh_from_db()
    assert (v1.version, v1.is_active) == (1, False)
    assert (v2.version, v2.is_active, v2.created_by) == (2, True, staff)
    assert fee_rule_for("fiat", "USD") == v2
    payment.refresh_from_db()
    assert payment.fee_rule_id == v1.id and payment.fee_amount == D("2.50")
    assert FeeRule.objects.filter(method="fiat", currency="USD").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"method": "cheque", "percentage": "1"}, "unknown_method"),
        ({"method": "fiat", "percentage": "101"}, "invalid_fee_rule"),
        ({"method": "fiat", "percentage": "1.23456"}, "invalid_fee_rule"),
        ({"method": "fiat", "percentage": "-1"}, "invalid_amount"),
        ({"method": "fiat", "percentage": 2.5}, "invalid_amount"),
        ({"method": "fiat", "percentage": "x"}, "invalid_amount"),
        ({"method": "fiat", "currency": "XXX", "percentage": "1"}, "unknown_currency"),
        ({"method": "fiat", "currency": "USD", "percentage": "1", "fixed_amount": "0.001"},
         "invalid_amount"),
        ({"method": "fiat", "currency": "JPY", "percentage": "1", "minimum_fee": "0.5"},
         "invalid_amount"),
        ({"method": "fiat", "currency": "USD", "percentage": "1", "minimum_fee": "5",
          "maximum_fee": "1"}, "invalid_fee_rule"),
        ({"method": "fiat", "percentage": "1", "fixed_amount": "0.30"}, "invalid_fee_rule"),
        ({"method": "fiat", "percentage": "1", "maximum_fee": "3"}, "invalid_fee_rule"),
    ],
)  # fmt: skip
def test_invalid_rules_are_rejected_and_nothing_is_written(kwargs, code, staff):
    with pytest.raises(ValidationFailed) as err:
        fee_rule_update(actor=Actor.for_admin(staff), **kwargs)
    assert err.value.code == code
    assert not FeeRule.objects.exists()


@pytest.mark.django_db
def test_admin_form_reports_a_bad_rule_as_a_form_error(client, staff):
    client.force_login(staff)
    response = client.post(
        "/admin/payments/feerule/add/",
        {"method": "fiat", "currency": "USD", "percentage": "1", "fixed_amount": "0.001"},
    )
    assert response.status_code == 200
    assert b"USD allows at most 2 decimal places" in response.content
    assert not FeeRule.objects.exists()
    response = client.post(
        "/admin/payments/feerule/add/",
        {"method": "fiat", "currency": "USD", "percentage": "1.5", "fixed_amount": "0.30"},
    )
    assert response.status_code == 302
    assert FeeRule.objects.get().version == 1
