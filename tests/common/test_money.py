"""Exact money: the currency registry, parsing, base units, storage at 22+18 digits, fees."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import ValidationFailed
from common.money import (
    CURRENCIES,
    MAX_AMOUNT,
    add,
    format_amount,
    from_base_units,
    get_currency,
    parse_amount,
    quantize,
    sub,
    to_base_units,
)
from payments.models import FeeRule
from payments.services.fees import compute_fee

CODES = sorted(CURRENCIES)


def test_registry_has_the_iso_and_token_exponents():
    expected = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3, "ETH": 18, "USDC": 6, "DAI": 18}
    assert {code: CURRENCIES[code].exponent for code in expected} == expected


@st.composite
def currency_and_units(draw):
    cur = CURRENCIES[draw(st.sampled_from(CODES))]
    max_units = (10**40 - 1) // 10 ** (18 - cur.exponent)  # MAX_AMOUNT in base units
    return cur, draw(st.integers(min_value=1, max_value=max_units))


@given(currency_and_units())
def test_base_units_round_trip_for_every_currency(pair):
    cur, units = pair
    amount = from_base_units(units, cur)
    assert to_base_units(amount, cur) == units
    assert parse_amount(format_amount(amount, cur), cur.code) == amount
    assert to_base_units(parse_amount(format(amount, "f"), cur.code), cur) == units


@given(currency_and_units())
def test_text_round_trip_keeps_every_digit(pair):
    cur, units = pair
    text = format_amount(from_base_units(units, cur), cur)
    assert "E" not in text and "e" not in text
    integer, _, fraction = text.partition(".")
    assert len(fraction) == cur.exponent
    assert int(integer + fraction) == units


@given(st.sampled_from(CODES), st.integers(min_value=1, max_value=5))
def test_one_decimal_too_many_is_rejected_not_rounded(code, extra):
    cur = CURRENCIES[code]
    text = "1." + "0" * (cur.exponent + extra - 1) + "1"
    with pytest.raises(ValidationFailed) as err:
        parse_amount(text, code)
    assert err.value.code == "invalid_amount"


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        0.1,
        float("nan"),
        float("inf"),
        True,
        "NaN",
        "sNaN",
        "Infinity",
        "-Infinity",
        "-1",
        "-0.01",
        "0",
        "0.00",
        0,
        "",
        "   ",
        "abc",
        "1,00",
        "1.0.0",
        "0x10",
        "1e400",
        "1" * 23,
        str(MAX_AMOUNT + Decimal("0.01")),
        "9" * 65,
        None,
        [],
        {"amount": 1},
        Decimal("NaN"),
        Decimal("-5"),
    ],
)
def test_parse_amount_rejects_bad_input(value):
    with pytest.raises(ValidationFailed) as err:
        parse_amount(value, "USD")
    assert err.value.code == "invalid_amount"


@pytest.mark.parametrize(
    ("value", "code", "expected"),
    [
        ("10", "USD", Decimal("10.00")),
        (7, "JPY", Decimal("7")),
        ("1.000", "JPY", Decimal("1")),
        ("0.001", "KWD", Decimal("0.001")),
        ("0.000000000000000001", "ETH", Decimal("1e-18")),
        ("0.000001", "USDC", Decimal("0.000001")),
        ("10.50", "usd", Decimal("10.50")),
    ],
)
def test_parse_amount_accepts_exact_values(value, code, expected):
    assert parse_amount(value, code) == expected


def test_zero_allowed_only_when_asked():
    assert parse_amount("0", "USD", allow_zero=True) == Decimal("0")


@pytest.mark.parametrize("code", ["XXX", "", "usdd", None, 5, "US"])
def test_unknown_currency(code):
    with pytest.raises(ValidationFailed) as err:
        parse_amount("1", code)
    assert err.value.code == "unknown_currency"
    with pytest.raises(ValidationFailed) as err:
        get_currency(code)
    assert err.value.code == "unknown_currency"


def test_base_units_refuse_fractions_and_non_integers():
    with pytest.raises(ValidationFailed):
        to_base_units(Decimal("1.001"), "USD")
    for bad in (1.0, "100", True):
        with pytest.raises(ValidationFailed):
            from_base_units(bad, "USD")  # type: ignore[arg-type]


def test_largest_amounts_are_exact_in_memory():
    wei = 10**40 - 1  # 22 integer digits and 18 decimals
    amount = from_base_units(wei, "ETH")
    assert amount == MAX_AMOUNT
    assert to_base_units(add(sub(amount, amount), amount), "ETH") == wei
    assert add(amount, Decimal("0.000000000000000001")) > MAX_AMOUNT  # no rounding in add
    assert quantize(Decimal("2.345"), "USD") == Decimal("2.35")  # ROUND_HALF_UP


# --- storage: a model round trip through the database (SQLite as text, PostgreSQL numeric) --
EXACT_STORAGE = [
    MAX_AMOUNT,  # 9999999999999999999999.999999999999999999
    Decimal("1234567890123456789012.123456789012345678"),
    Decimal("0.000000000000000001"),
    Decimal("1000000000000000000000"),
    Decimal("0.1"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("amount", EXACT_STORAGE)
def test_22_integer_and_18_decimal_digits_store_and_load_exactly(amount, order):
    from orders.models import Order

    Order.objects.filter(pk=order.pk).update(amount=amount, currency="ETH")
    loaded = Order.objects.get(pk=order.pk)
    assert isinstance(loaded.amount, Decimal)
    assert loaded.amount == amount
    assert to_base_units(loaded.amount, "ETH") == to_base_units(amount, "ETH")
    assert Order.objects.filter(pk=order.pk, amount=amount).exists()


@pytest.mark.django_db
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(units=st.integers(min_value=1, max_value=10**40 - 1))
def test_any_wei_amount_survives_the_database(units, order):
    from orders.models import Order

    amount = from_base_units(units, "ETH")
    order = Order.objects.create(
        buyer=order.buyer, seller=order.seller, amount=amount, currency="ETH"
    )
    assert to_base_units(Order.objects.get(pk=order.pk).amount, "ETH") == units


# --- fee + net == amount ------------------------------------------------------------------
@st.composite
def amount_and_rule(draw):
    cur = CURRENCIES[draw(st.sampled_from(CODES))]
    units = draw(st.integers(min_value=1, max_value=10 ** (12 + cur.exponent)))
    amount = from_base_units(units, cur)
    pct = Decimal(draw(st.integers(min_value=0, max_value=1_000_000))).scaleb(-4)
    money = st.integers(min_value=0, max_value=10 ** (6 + cur.exponent)).map(
        lambda u: from_base_units(u, cur)
    )
    per_currency = draw(st.booleans())
    minimum = draw(st.none() | money) if per_currency else None
    maximum = draw(st.none() | money) if per_currency else None
    if minimum is not None and maximum is not None and minimum > maximum:
        minimum, maximum = maximum, minimum
    rule = FeeRule(
        method="fiat",
        currency=cur.code if per_currency else "",
        percentage=pct,
        fixed_amount=draw(money) if per_currency else Decimal(0),
        minimum_fee=minimum,
        maximum_fee=maximum,
    )
    return amount, cur, rule


@given(amount_and_rule())
def test_fee_plus_net_is_the_amount(case):
    amount, cur, rule = case
    fee = compute_fee(amount, cur.code, rule)
    net = sub(amount, fee)
    assert add(fee, net) == amount
    assert Decimal(0) <= fee <= amount
    assert to_base_units(fee, cur) + to_base_units(net, cur) == to_base_units(amount, cur)
    if rule.maximum_fee is not None:
        assert fee <= max(rule.maximum_fee, Decimal(0))


def test_one_conversion_at_an_assets_own_decimals():
    from common import money
    from payments.providers.base import ProviderError
    from payments.providers.chain import provider

    # a USDC token with 18 decimals on some chain: the token's decimals, not USDC's exponent
    assert money.units_at_decimals(Decimal("1.5"), 18) == 15 * 10**17
    assert money.amount_at_decimals(15 * 10**17, 18) == Decimal("1.5")
    assert money.to_base_units(Decimal("1.5"), "USDC") == money.units_at_decimals(Decimal("1.5"), 6)
    assert provider.base_units_to_amount is money.amount_at_decimals
    with pytest.raises(ProviderError) as err:
        provider.amount_to_base_units(Decimal("0.0000001"), 6)
    assert err.value.code == "invalid_amount"


@pytest.mark.parametrize(
    "text", ["١٠", "５", "1_000", "+5", " 5 ", "5 ", "1e21", "1E+21", "-1", ".5", "5."]
)
def test_amount_text_is_exactly_the_schema_pattern(text):
    with pytest.raises(ValidationFailed) as err:
        parse_amount(text, "USD")
    assert err.value.code == "invalid_amount"


def test_a_json_number_with_an_exponent_is_refused():
    with pytest.raises(ValidationFailed):
        parse_amount(Decimal("1E+21"), "USD")
    assert parse_amount(Decimal("12.50"), "USD") == Decimal("12.50")


@pytest.mark.django_db
def test_orders_above_the_currency_maximum_are_refused(settings):
    from orders.audit import Actor
    from orders.services import order_create
    from tests.factories import SellerFactory, UserFactory

    buyer, seller = UserFactory(), SellerFactory()
    settings.MAX_AMOUNTS = {**settings.MAX_AMOUNTS, "USD": "1000"}
    with pytest.raises(ValidationFailed) as err:
        order_create(
            buyer=buyer, seller_id=seller.pk, amount="1000.01", currency="USD", actor=Actor.system()
        )
    assert err.value.code == "amount_too_large"
    order = order_create(
        buyer=buyer, seller_id=seller.pk, amount="1000.00", currency="USD", actor=Actor.system()
    )
    assert order.amount == Decimal("1000.00")
