"""Fee rules: which rule applies, what it charges, and how staff change it (by new version)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from django.db import IntegrityError, transaction

from common.errors import Conflict, ValidationFailed
from common.money import MONEY_CONTEXT, get_currency, parse_amount, quantize
from orders.audit import Actor
from payments.models import FeeRule, PaymentMethod


def fee_rule_for(method: str, currency: str) -> FeeRule | None:
    """The active rule for the method and currency, else the method's any-currency rule."""
    rules = {
        r.currency: r
        for r in FeeRule.objects.filter(method=method, currency__in=[currency, ""], is_active=True)
    }
    return rules.get(currency) or rules.get("")


def compute_fee(amount: Decimal, currency: str, rule: FeeRule | None) -> Decimal:
    """percentage of amount + fixed, clamped to [minimum, maximum] and to the amount itself;
    rounded ROUND_HALF_UP at the currency's exponent. fee + net == amount always."""
    if rule is None:
        return quantize(Decimal(0), currency)
    with localcontext(MONEY_CONTEXT):
        fee = amount * rule.percentage / 100 + (rule.fixed_amount if rule.currency else 0)
    if rule.currency:
        if rule.minimum_fee is not None and fee < rule.minimum_fee:
            fee = rule.minimum_fee
        if rule.maximum_fee is not None and fee > rule.maximum_fee:
            fee = rule.maximum_fee
    fee = quantize(fee, currency, ROUND_HALF_UP)
    return min(fee, amount)


#: Decimal places a percentage may have (the column is numeric(7, 4)).
PERCENTAGE_DECIMALS = 4


def fee_rule_clean(
    *,
    method: str,
    currency: str = "",
    percentage: Any,
    fixed_amount: Any = "0",
    minimum_fee: Any = None,
    maximum_fee: Any = None,
) -> dict[str, Any]:
    """The rule's values, exact and checked, or ``ValidationFailed`` (``unknown_method``,
    ``unknown_currency``, ``invalid_amount``, ``invalid_fee_rule``)."""
    if method not in PaymentMethod.values:
        raise ValidationFailed(f"Unknown payment method {method!r}.", code="unknown_method")
    pct = parse_amount(percentage, "ETH", allow_zero=True)
    exponent = pct.normalize(MONEY_CONTEXT).as_tuple().exponent
    assert isinstance(exponent, int)
    if pct > 100 or -exponent > PERCENTAGE_DECIMALS:
        raise ValidationFailed(
            f"A percentage lies between 0 and 100 with at most {PERCENTAGE_DECIMALS} decimals.",
            code="invalid_fee_rule",
            details={"percentage": str(percentage)[:32]},
        )
    if currency:
        cur = get_currency(currency)
        fixed = parse_amount(fixed_amount, cur, allow_zero=True)
        minimum = (
            None if minimum_fee in (None, "") else parse_amount(minimum_fee, cur, allow_zero=True)
        )
        maximum = (
            None if maximum_fee in (None, "") else parse_amount(maximum_fee, cur, allow_zero=True)
        )
        if minimum is not None and maximum is not None and minimum > maximum:
            raise ValidationFailed("The minimum fee exceeds the maximum.", code="invalid_fee_rule")
        currency = cur.code
    else:
        if any(
            v not in (None, "", "0", 0, Decimal(0))
            for v in (fixed_amount, minimum_fee, maximum_fee)
        ):
            raise ValidationFailed(
                "A rule for any currency has a percentage only; fixed parts and limits need a "
                "currency.",
                code="invalid_fee_rule",
            )
        fixed, minimum, maximum = Decimal(0), None, None
    return {
        "method": method,
        "currency": currency,
        "percentage": pct.quantize(Decimal(1).scaleb(-PERCENTAGE_DECIMALS)),
        "fixed_amount": fixed,
        "minimum_fee": minimum,
        "maximum_fee": maximum,
    }


def fee_rule_update(
    *,
    method: str,
    currency: str = "",
    percentage: Any,
    fixed_amount: Any = "0",
    minimum_fee: Any = None,
    maximum_fee: Any = None,
    actor: Actor,
) -> FeeRule:
    """Create the next version of the (method, currency) rule and retire the previous one."""
    values = fee_rule_clean(
        method=method,
        currency=currency,
        percentage=percentage,
        fixed_amount=fixed_amount,
        minimum_fee=minimum_fee,
        maximum_fee=maximum_fee,
    )
    method, currency = values["method"], values["currency"]
    try:
        with transaction.atomic():
            previous = (
                FeeRule.objects.select_for_update()
                .filter(method=method, currency=currency)
                .order_by("-version")
                .first()
            )
            if previous is not None:
                FeeRule.objects.filter(method=method, currency=currency, is_active=True).update(
                    is_active=False
                )
            user = actor.user if getattr(actor.user, "pk", None) else None
            return FeeRule.objects.create(
                **values,
                version=(previous.version + 1) if previous else 1,
                is_active=True,
                created_by=user,
            )
    except IntegrityError:
        raise Conflict(
            "The rule was changed at the same time; reload and try again.",
            code="fee_rule_changed",
        ) from None
