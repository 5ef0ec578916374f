"""One walk through the foundation's main path: pay, confirm, refund in two parts."""

from decimal import Decimal

import pytest

from orders.audit import Actor
from orders.models import OrderPaymentEvent
from payments.providers.base import Outcome, ProviderResult
from payments.services.payments import payment_apply_result, payment_create, payment_start
from payments.services.refunds import payment_refund

pytestmark = pytest.mark.django_db


def test_pay_confirm_and_refund_moves_order_in_lockstep(order, actor, staff):
    payment = payment_create(order_id=order.id, method="fiat", actor=actor)
    payment_start(payment_id=payment.id, actor=actor)
    order.refresh_from_db()
    assert order.status == "payment_pending"

    payment_apply_result(
        payment_id=payment.id,
        actor=Actor.for_webhook("dummy", "evt_1"),
        result=ProviderResult(Outcome.SUCCEEDED, raw_status="succeeded"),
    )
    order = type(order).objects.get(pk=order.id)
    assert order.status == "paid"

    refund = payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="40.00")
    assert refund.status == "succeeded"
    order = type(order).objects.get(pk=order.id)
    assert order.status == "partially_refunded"
    payment_refund(order_id=order.id, actor=Actor.for_admin(staff))
    order = type(order).objects.get(pk=order.id)
    assert order.status == "refunded"
    payment = type(payment).objects.get(pk=payment.id)
    assert payment.status == "refunded" and payment.refunded_amount == Decimal("100.00")
    actions = list(OrderPaymentEvent.objects.filter(order=order).values_list("entity", "action"))
    assert ("payment", "confirm") in actions and ("order", "mark_paid") in actions
    assert ("refund", "succeed") in actions and ("order", "refund_fully") in actions
