"""The seven payment endpoints: success paths and error codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from orders.models import OrderPaymentEvent
from payments.models import PaymentTransaction, Refund
from payments.providers.base import (
    FailureKind,
    Outcome,
    ProviderError,
    ProviderResult,
    ProviderUnavailableError,
)
from payments.providers.dummy import DummyProvider
from tests.factories import UserFactory
from tests.payments.api.conftest import error_code, fail, pay

pytestmark = pytest.mark.django_db
HASH = "0x" + "ab" * 32
WALLET = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # a checksummed address


# --- 1. POST /api/orders/{id}/payment-transactions ------------------------------------------
def test_create_transaction(buyer_api, order):
    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions", {"payment_method": "fiat"}
    )
    assert r.status_code == 201, r.content
    tx = r.json()
    assert tx["order_id"] == str(order.id) and tx["status"] == "pending"
    assert tx["amount"] == "100.00" and tx["currency"] == "USD" and tx["fee_amount"] == "0.00"
    assert tx["payment_instructions"]["provider"] == "dummy"
    assert tx["client_secret"] is None
    for key in (
        "transaction_hash",
        "chain_id",
        "confirmations",
        "payment_intent_id",
        "escrow_id",
        "failure_reason",
        "created_at",
        "updated_at",
        "confirmed_at",
    ):
        assert key in tx


def test_create_transaction_partial_amount_and_errors(buyer_api, order):
    url = f"/api/orders/{order.id}/payment-transactions/"
    r = buyer_api.post_json(url, {"payment_method": "fiat", "amount": "500"})
    assert r.status_code == 409 and error_code(r) == "amount_exceeds_outstanding"
    r = buyer_api.post_json(url, {"payment_method": "fiat", "currency": "EUR"})
    assert r.status_code == 409 and error_code(r) == "currency_mismatch"
    r = buyer_api.post_json(url, {"payment_method": "bitcoin"})
    assert r.status_code == 400
    assert r.json()["error"]["details"]["payment_method"][0]["code"] == "unknown_method"
    r = buyer_api.post_json(url, {"payment_method": "fiat", "amount": "40"})
    assert r.status_code == 201 and r.json()["amount"] == "40.00"
    r = buyer_api.post_json(url, {"payment_method": "fiat"})
    assert r.status_code == 409 and error_code(r) == "payment_in_progress"
    assert PaymentTransaction.objects.count() == 1


def test_create_transaction_on_paid_order_is_409(buyer_api, paid_order):
    r = buyer_api.post_json(
        f"/api/orders/{paid_order.id}/payment-transactions", {"payment_method": "fiat"}
    )
    assert r.status_code == 409 and error_code(r) == "order_not_payable"


def test_create_crypto_transaction_with_hash_claims_it(buyer_api, order):
    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions",
        {
            "payment_method": "crypto",
            "transaction_hash": HASH,
            "chain_id": 31337,
            "token": "",
            "payer_address": WALLET,
        },
    )
    assert r.status_code == 201, r.content
    payment = PaymentTransaction.objects.get(pk=r.json()["id"])
    assert payment.status == "processing" and payment.transaction_hash == HASH
    assert payment.provider_data["request"] == {
        "chain_id": 31337,
        "token": "",
        "payer_address": WALLET.lower(),
    }


def test_create_transaction_provider_unavailable_is_502(buyer_api, order):
    DummyProvider.script[("create", "*")] = ProviderUnavailableError("timeout")
    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions", {"payment_method": "fiat"}
    )
    assert r.status_code == 502 and error_code(r) == "provider_unavailable"


def test_seller_cannot_pay(seller_api, order):
    r = seller_api.post_json(
        f"/api/orders/{order.id}/payment-transactions", {"payment_method": "fiat"}
    )
    assert r.status_code == 403 and error_code(r) == "permission_denied"


# --- 2. PUT /api/orders/payment-transactions/{id}/status --------------------------------------
def test_staff_updates_status(staff_api, api_for, order):
    payment = pay(order, confirm=False)
    url = f"/api/orders/payment-transactions/{payment.id}/status"
    r = staff_api.put_json(url, {"status": "processing", "reason": "seen", "details": {"a": 1}})
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "processing"
    event = OrderPaymentEvent.objects.filter(payment_id=payment.id).last()
    assert event.to_state == "processing" and event.details["reason"] == "seen"
    # a payment no provider can show is confirmed by two staff members, not one
    r = staff_api.put_json(url, {"status": "confirmed", "reason": "bank transfer seen"})
    assert r.status_code == 200 and r.json()["status"] == "processing"
    r = staff_api.put_json(url, {"status": "confirmed"})
    assert r.status_code == 409 and error_code(r) == "second_approval_required"
    second = UserFactory(username="second_staff", is_staff=True)
    second.user_permissions.add(Permission.objects.get(codename="update_payment_status"))
    second = type(second).objects.get(pk=second.pk)
    r = api_for(second).put_json(url, {"status": "confirmed"})
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    order.refresh_from_db()
    assert order.status == "paid"
    actions = set(
        OrderPaymentEvent.objects.filter(payment_id=payment.id).values_list("action", flat=True)
    )
    assert {"confirmation_requested", "confirm"} <= actions
    r = staff_api.put_json(url, {"status": "pending"})
    assert r.status_code == 409 and error_code(r) == "invalid_transition"
    r = staff_api.put_json(url, {"status": "teleported"})
    assert r.status_code == 400


def test_status_cancelled_cancels_with_the_provider_first(staff_api, order):
    payment = pay(order, confirm=False)
    url = f"/api/orders/payment-transactions/{payment.id}/status"
    DummyProvider.script[("cancel", str(payment.id))] = ProviderError(
        "The PaymentIntent succeeded.", code="payment_intent_unexpected_state"
    )
    r = staff_api.put_json(url, {"status": "cancelled", "reason": "duplicate"})
    assert r.status_code == 422 and error_code(r) == "payment_intent_unexpected_state"
    payment.refresh_from_db()
    assert payment.status == "pending"  # the provider did not cancel: neither do we
    DummyProvider.script.clear()
    r = staff_api.put_json(url, {"status": "cancelled", "reason": "duplicate"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert DummyProvider.calls.count(("cancel", str(payment.id))) == 2


@pytest.mark.parametrize("provider", ["stripe", "chain", "escrow"])
@pytest.mark.parametrize("target", ["failed", "expired"])
def test_provider_owned_states_are_refused_for_provider_backed_payments(
    staff_api, order, provider, target
):
    payment = pay(order, confirm=False)
    PaymentTransaction.objects.filter(pk=payment.pk).update(provider=provider)
    url = f"/api/orders/payment-transactions/{payment.id}/status"
    r = staff_api.put_json(url, {"status": target})
    assert r.status_code == 409 and error_code(r) == "status_owned_by_provider"
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert not OrderPaymentEvent.objects.filter(payment_id=payment.id, to_state=target).exists()
    r = staff_api.put_json(url, {"status": "processing"})  # not the provider's to decide
    assert r.status_code == 200 and r.json()["status"] == "processing"


def test_service_account_with_permission_updates_status(api_for, order):
    payment = pay(order, confirm=False)
    robot = UserFactory(username="robot")
    robot.user_permissions.add(Permission.objects.get(codename="update_payment_status"))
    robot = type(robot).objects.get(pk=robot.pk)
    r = api_for(robot).put_json(
        f"/api/orders/payment-transactions/{payment.id}/status", {"status": "failed"}
    )
    assert r.status_code == 200 and r.json()["status"] == "failed"


def test_parties_cannot_update_status(buyer_api, seller_api, order):
    payment = pay(order, confirm=False)
    for client in (buyer_api, seller_api):
        r = client.put_json(
            f"/api/orders/payment-transactions/{payment.id}/status", {"status": "confirmed"}
        )
        assert r.status_code == 403
    payment.refresh_from_db()
    assert payment.status == "pending"


@pytest.fixture
def provider_backed(settings):  # type: ignore[no-untyped-def]
    """The dummy provider under a name that is not a manual one: a provider with evidence."""
    from payments.providers.registry import get_provider

    settings.PAYMENT_PROVIDER_CLASSES = {
        **settings.PAYMENT_PROVIDER_CLASSES,
        "backed": "payments.providers.dummy.DummyProvider",
    }
    get_provider.cache_clear()
    yield "backed"
    get_provider.cache_clear()


def test_staff_confirm_needs_the_providers_evidence(staff_api, order, provider_backed):
    """Cancelled, then confirmed by hand: refused while the provider does not show it paid."""
    payment = pay(order, confirm=False)
    PaymentTransaction.objects.filter(pk=payment.pk).update(provider=provider_backed)
    url = f"/api/orders/payment-transactions/{payment.id}/status"
    assert staff_api.put_json(url, {"status": "cancelled"}).status_code == 200
    DummyProvider.script[("fetch", str(payment.id))] = ProviderResult(
        Outcome.CANCELLED, raw_status="canceled"
    )
    r = staff_api.put_json(url, {"status": "confirmed"})
    assert r.status_code == 409 and error_code(r) == "provider_disagrees"
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.status == "cancelled" and order.status != "paid"
    # the provider shows it paid after all (a late capture): confirmed on that evidence
    DummyProvider.script[("fetch", str(payment.id))] = ProviderResult(
        Outcome.SUCCEEDED, raw_status="succeeded"
    )
    r = staff_api.put_json(url, {"status": "confirmed"})
    assert r.status_code == 200 and r.json()["status"] == "confirmed"


# --- 4. retry ---------------------------------------------------------------------------------
def test_retry_after_failure_and_switch_method(buyer_api, order):
    url = f"/api/orders/{order.id}/payment/retry"
    r = buyer_api.post_json(url, {})
    assert r.status_code == 409 and error_code(r) == "not_retryable"
    first = fail(pay(order, confirm=False))
    r = buyer_api.post_json(url, {"payment_method": "crypto"})
    assert r.status_code == 201, r.content
    assert r.json()["payment_method"] == "crypto" and r.json()["retry_of_id"] == str(first.id)
    r = buyer_api.post_json(url, {})
    assert r.status_code == 409 and error_code(r) == "not_retryable"


def test_final_failure_retries_only_with_another_method(buyer_api, order):
    payment = pay(order, confirm=False)
    from orders.audit import Actor
    from payments.services.payments import payment_apply_result

    payment_apply_result(
        payment_id=payment.id,
        actor=Actor.for_webhook("dummy", "e"),
        result=ProviderResult(Outcome.FAILED, failure_kind=FailureKind.FINAL, error_code="fraud"),
    )
    url = f"/api/orders/{order.id}/payment/retry"
    status = buyer_api.get(f"/api/orders/{order.id}/payment-status").json()
    assert status["can_retry"] is False
    assert buyer_api.post_json(url, {}).status_code == 409
    assert buyer_api.post_json(url, {"payment_method": "escrow"}).status_code == 201


# --- 5. refund --------------------------------------------------------------------------------
def test_seller_refunds_in_parts(seller_api, paid_order):
    url = f"/api/orders/{paid_order.id}/payment/refund"
    r = seller_api.post_json(url, {"amount": "30.00", "reason": "damaged"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["amount"] == "30.00" and body["status"] == "succeeded"
    assert body["order_id"] == str(paid_order.id) and body["reason"] == "damaged"
    r = seller_api.post_json(url, {"amount": "70.01"})
    assert r.status_code == 409 and error_code(r) == "refund_exceeds_paid"
    r = seller_api.post_json(url, {})
    assert r.status_code == 201 and r.json()["amount"] == "70.00"
    paid_order.refresh_from_db()
    assert paid_order.status == "refunded"
    assert sum(r.amount for r in Refund.objects.all()) == Decimal("100.00")


def test_refund_permissions(api_for, buyer_api, paid_order):
    url = f"/api/orders/{paid_order.id}/payment/refund"
    assert buyer_api.post_json(url, {"amount": "1"}).status_code == 403
    plain_staff = UserFactory(username="plainstaff", is_staff=True)
    assert api_for(plain_staff).post_json(url, {"amount": "1"}).status_code == 403
    support = UserFactory(username="support", is_staff=True)
    support.user_permissions.add(Permission.objects.get(codename="refund_payment"))
    support = type(support).objects.get(pk=support.pk)
    assert api_for(support).post_json(url, {"amount": "1"}).status_code == 201


def test_refund_errors(seller_api, order, paid_order):
    url = f"/api/orders/{paid_order.id}/payment/refund"
    assert error_code(seller_api.post_json(url, {"amount": "-5"})) == "invalid_amount"
    assert error_code(seller_api.post_json(url, {"amount": "1.234"})) == "invalid_amount"
    r = seller_api.post_json(url, {"transaction_id": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 404 and error_code(r) == "payment_not_found"
    r = seller_api.post_json(url, {"transaction_id": "nope"})
    assert r.status_code == 400


def test_refund_of_unpaid_order_is_409(seller, api_for, buyer):
    from tests.payments.api.conftest import new_order

    order = new_order(buyer, seller)
    r = api_for(seller).post_json(f"/api/orders/{order.id}/payment/refund", {})
    assert r.status_code == 409 and error_code(r) == "not_refundable"


# --- 7. monitor-blockchain -------------------------------------------------------------------
def test_monitor_blockchain_claims_transaction(buyer_api, order):
    payment = pay(order, confirm=False, method="crypto")
    url = "/api/orders/payment/monitor-blockchain"
    r = buyer_api.post_json(url, {"transaction_id": str(payment.id), "transaction_hash": HASH})
    assert r.status_code == 202, r.content
    assert r.json() == {
        "transaction_id": str(payment.id),
        "status": "processing",
        "transaction_hash": HASH,
        "confirmations": 0,
        "required_confirmations": 0,
    }
    r = buyer_api.post_json(url, {"order_id": str(order.id), "transaction_hash": HASH})
    assert r.status_code == 202


def test_monitor_blockchain_errors(buyer_api, order, buyer, seller):
    url = "/api/orders/payment/monitor-blockchain"
    fiat = pay(order, confirm=False)
    r = buyer_api.post_json(url, {"transaction_id": str(fiat.id), "transaction_hash": HASH})
    assert r.status_code == 400 and error_code(r) == "not_a_chain_payment"
    r = buyer_api.post_json(url, {"transaction_id": str(fiat.id), "transaction_hash": "0x12"})
    assert r.status_code == 400 and error_code(r) == "invalid_transaction_hash"
    r = buyer_api.post_json(url, {"transaction_hash": HASH})
    assert r.status_code == 400 and "transaction_id" in r.json()["error"]["details"]
    from tests.payments.api.conftest import new_order

    other = new_order(buyer, seller)
    crypto = pay(other, confirm=False, method="crypto")
    r = buyer_api.post_json(url, {"transaction_id": str(crypto.id), "transaction_hash": HASH})
    assert r.status_code == 202
    third = new_order(buyer, seller)
    r = buyer_api.post_json(url, {"order_id": str(third.id), "transaction_hash": HASH})
    assert r.status_code == 404 and error_code(r) == "payment_not_found"
    crypto2 = pay(third, confirm=False, method="crypto")
    r = buyer_api.post_json(url, {"transaction_id": str(crypto2.id), "transaction_hash": HASH})
    assert r.status_code == 409 and error_code(r) == "transaction_hash_already_used"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"payer_address": "0x1234"}, "invalid_payer_address"),
        ({"payer_address": "0x" + "g" * 40}, "invalid_payer_address"),
        # PAYER with one letter's case flipped: the checksum no longer holds
        ({"payer_address": WALLET.replace("F7", "f7")}, "invalid_payer_address"),
    ],
)
def test_api_validates_the_payers_wallet(buyer_api, order, body, code):
    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions", {"payment_method": "crypto", **body}
    )
    assert r.status_code == 400, r.content
    assert r.json()["error"]["details"]["payer_address"][0]["code"] == code


@pytest.mark.parametrize("wallet", [WALLET, WALLET.lower(), "0x" + WALLET[2:].upper()])
def test_api_takes_the_payers_wallet_lowercased(buyer_api, order, wallet):
    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions",
        {"payment_method": "crypto", "payer_address": wallet},
    )
    assert r.status_code == 201, r.content
    payment = PaymentTransaction.objects.get(pk=r.json()["id"])
    assert payment.provider_data["request"]["payer_address"] == WALLET.lower()


def test_retry_keeps_the_payers_wallet(buyer_api, order):
    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions",
        {"payment_method": "crypto", "payer_address": WALLET},
    )
    first = fail(PaymentTransaction.objects.get(pk=r.json()["id"]))
    r = buyer_api.post_json(f"/api/orders/{order.id}/payment/retry", {})
    assert r.status_code == 201, r.content
    again = PaymentTransaction.objects.get(pk=r.json()["id"])
    assert again.retry_of_id == first.id
    assert again.provider_data["request"]["payer_address"] == WALLET.lower()


def test_audit_reference_is_the_sanitised_request_id(buyer_api, order):
    """A hostile X-Request-ID never reaches the audit trail; the id the logs use does."""
    from orders.models import OrderPaymentEvent

    r = buyer_api.post_json(
        f"/api/orders/{order.id}/payment-transactions",
        {"payment_method": "fiat"},
        HTTP_X_REQUEST_ID="abc<script>x",
    )
    assert r.status_code == 201, r.content
    logged_id = r["X-Request-ID"]
    assert "<" not in logged_id
    references = set(
        OrderPaymentEvent.objects.filter(order_id=order.id).values_list("reference", flat=True)
    )
    assert logged_id in references
    assert not any("script" in ref for ref in references)
