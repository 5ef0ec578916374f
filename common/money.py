"""Currencies, exact amounts and base units. Money is Decimal or int here, never float.

Every amount is checked against its currency's exponent: more decimals than the currency has is
an error, not a rounding. Conversions to and from integer base units (cents, wei, token units)
are exact. Arithmetic runs in ``MONEY_CONTEXT`` (60 significant digits) so that a 22-digit
integer part with 18 decimals never rounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any

from common.errors import ValidationFailed

#: Storage: 40 digits with 18 decimals holds 10**22 units of an 18-decimal asset, exactly.
AMOUNT_MAX_DIGITS = 40
AMOUNT_DECIMAL_PLACES = 18
MONEY_CONTEXT = Context(
    prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow]
)
#: The largest storable amount, 9999999999999999999999.999999999999999999 (computed in
#: MONEY_CONTEXT: the default 28-digit context would round it up to 10**22, which overflows).
MAX_AMOUNT = MONEY_CONTEXT.subtract(
    MONEY_CONTEXT.power(Decimal(10), AMOUNT_MAX_DIGITS - AMOUNT_DECIMAL_PLACES),
    Decimal(1).scaleb(-AMOUNT_DECIMAL_PLACES),
)


@dataclass(frozen=True)
class Currency:
    code: str
    exponent: int
    kind: str  # "fiat" or "crypto"
    name: str

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.exponent)


_FIAT = [  # ISO 4217 minor units
    ("USD", 2, "US dollar"),
    ("EUR", 2, "Euro"),
    ("GBP", 2, "Pound sterling"),
    ("CHF", 2, "Swiss franc"),
    ("CAD", 2, "Canadian dollar"),
    ("AUD", 2, "Australian dollar"),
    ("JPY", 0, "Yen"),
    ("KRW", 0, "Won"),
    ("KWD", 3, "Kuwaiti dinar"),
    ("BHD", 3, "Bahraini dinar"),
]
_CRYPTO = [  # token decimals
    ("ETH", 18, "Ether"),
    ("USDC", 6, "USD Coin"),
    ("USDT", 6, "Tether USD"),
    ("DAI", 18, "Dai"),
]

CURRENCIES: dict[str, Currency] = {
    **{code: Currency(code, exp, "fiat", name) for code, exp, name in _FIAT},
    **{code: Currency(code, exp, "crypto", name) for code, exp, name in _CRYPTO},
}
CURRENCY_CHOICES = [(c.code, f"{c.code} ({c.name})") for c in CURRENCIES.values()]


def get_currency(code: str | Currency) -> Currency:
    if isinstance(code, Currency):
        return code
    if not isinstance(code, str) or code.upper() not in CURRENCIES:
        raise ValidationFailed(
            f"Unknown currency {code!r}.",
            code="unknown_currency",
            details={"currency": str(code)[:16], "supported": sorted(CURRENCIES)},
        )
    return CURRENCIES[code.upper()]


#: The schema's amount pattern, ASCII only (``\d`` would take other scripts' digits).
PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, (bool, float)):
        # A float has already lost the exact value the caller meant.
        raise ValidationFailed(
            "Amounts must be decimal strings, not floats.", code="invalid_amount"
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        # exactly the schema's pattern: ASCII digits, one optional point (no sign, spaces,
        # underscores, exponents or other scripts' digits, all of which Decimal() accepts)
        if len(value) > 64 or not PLAIN_DECIMAL.fullmatch(value):
            raise ValidationFailed(
                'Amount is a plain decimal string, e.g. "12.50".', code="invalid_amount"
            )
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValidationFailed("Amount is not a number.", code="invalid_amount") from None
    else:
        raise ValidationFailed("Amount is not a number.", code="invalid_amount")
    if not result.is_finite():
        raise ValidationFailed("Amount must be finite.", code="invalid_amount")
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:  # a JSON number written 1e21
        raise ValidationFailed("Amount is written without an exponent.", code="invalid_amount")
    return result


def parse_amount(value: Any, currency: str | Currency, *, allow_zero: bool = False) -> Decimal:
    """Return ``value`` as an exact Decimal valid for ``currency``, or raise ``invalid_amount``.

    Rejects floats, non-numbers, negatives, zero (unless ``allow_zero``), amounts above the
    storable maximum and amounts with more decimals than the currency has.
    """
    cur = get_currency(currency)
    amount = _to_decimal(value)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValidationFailed(
            "Amount must be greater than zero.",
            code="invalid_amount",
            details={"amount": str(value)[:64]},
        )
    if amount > MAX_AMOUNT:
        raise ValidationFailed(
            "Amount is too large.", code="invalid_amount", details={"max": str(MAX_AMOUNT)}
        )
    exponent = amount.normalize(MONEY_CONTEXT).as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > cur.exponent:
        raise ValidationFailed(
            f"{cur.code} allows at most {cur.exponent} decimal places.",
            code="invalid_amount",
            details={"amount": str(value)[:64], "currency": cur.code, "decimals": cur.exponent},
        )
    return quantize(amount, cur)


def quantize(amount: Decimal, currency: str | Currency, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Round ``amount`` to the currency's exponent (ROUND_HALF_UP unless told otherwise)."""
    cur = get_currency(currency)
    with localcontext(MONEY_CONTEXT):
        return amount.quantize(cur.quantum, rounding=rounding)


def to_base_units(amount: Decimal, currency: str | Currency) -> int:
    """Exact integer base units (cents, wei, ...). Raises if ``amount`` is finer than allowed."""
    cur = get_currency(currency)
    return units_at_decimals(amount, cur.exponent, what=cur.code)


def units_at_decimals(amount: Decimal, decimals: int, *, what: str = "the asset") -> int:
    """Exact integer base units of an asset with ``decimals`` (a token's own decimals may differ
    from its currency's exponent). Raises ``invalid_amount`` if ``amount`` is finer."""
    with localcontext(MONEY_CONTEXT):
        scaled = Decimal(amount).scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise ValidationFailed(f"{amount} is finer than {what} allows.", code="invalid_amount")
        return int(scaled)


def amount_at_decimals(units: int, decimals: int) -> Decimal:
    """The amount of ``units`` base units of an asset with ``decimals`` (exact, unquantized)."""
    with localcontext(MONEY_CONTEXT):
        return Decimal(int(units)).scaleb(-decimals)


def from_base_units(units: int, currency: str | Currency) -> Decimal:
    cur = get_currency(currency)
    if isinstance(units, bool) or not isinstance(units, int):
        raise ValidationFailed("Base units must be an integer.", code="invalid_amount")
    with localcontext(MONEY_CONTEXT):
        return Decimal(units).scaleb(-cur.exponent).quantize(cur.quantum)


def format_amount(amount: Decimal, currency: str | Currency) -> str:
    """The amount as a plain decimal string at the currency's exponent (no exponent notation)."""
    return f"{quantize(amount, currency):f}"


def add(*amounts: Decimal) -> Decimal:
    with localcontext(MONEY_CONTEXT):
        return sum(amounts, Decimal(0))


def sub(a: Decimal, b: Decimal) -> Decimal:
    with localcontext(MONEY_CONTEXT):
        return a - b


def check_maximum(amount: Decimal, currency: str | Currency) -> None:
    """Refuse an amount above the currency's maximum (``MAX_AMOUNTS`` in the settings): no card
    order for 10^22 dollars reaches a provider."""
    from django.conf import settings

    cur = get_currency(currency)
    limit = settings.MAX_AMOUNTS.get(cur.code)
    if limit is not None and amount > Decimal(str(limit)):
        raise ValidationFailed(
            f"{cur.code} amounts are at most {limit}.",
            code="amount_too_large",
            details={"currency": cur.code, "max": str(limit)},
        )
