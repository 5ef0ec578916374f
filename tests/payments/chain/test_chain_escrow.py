"""Escrow payments on a real anvil: deposit -> held -> confirm delivery -> released; disputes
resolved by a split; partial refunds; a squatted escrow id; crypto refunds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from common.errors import ValidationFailed
from orders.audit import Actor
from orders.models import Order
from payments.models import ChainTransaction, PaymentTransaction, Refund
from payments.providers.chain import client as rpc
from payments.services.escrow import escrow_refund, refund_record_transaction
from payments.services.payments import payment_claim_transaction
from payments.services.refunds import payment_refund
from tests.factories import UserFactory
from tests.payments.chain.conftest import CONFIRMATIONS, chain_order, start_payment

# committed transactions: broadcasts and receipts run on commit, as in production
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def api(user) -> APIClient:  # type: ignore[no-untyped-def]
    """A client speaking JSON, as the API does (a form body is 415)."""
    client = APIClient()
    client.default_format = "json"
    client.force_authenticate(user)
    return client


def settle(chain_env) -> None:  # type: ignore[no-untyped-def]
    """Let everything sent so far reach its confirmations and be read."""
    chain_env.poll()
    chain_env.node.mine(CONFIRMATIONS)
    chain_env.poll()


def held_escrow(chain_env, order, payment=None):  # type: ignore[no-untyped-def]
    payment = payment or start_payment(
        order, "escrow", details={"seller_address": chain_env.seller_wallet}
    )
    if order.currency == "USDC":
        chain_env.mint(chain_env.payer, int(payment.amount_base_units))
    chain_env.send_requests(payment)
    report = chain_env.poll()
    assert report.events == 0
    payment = PaymentTransaction.objects.get(pk=payment.id)
    assert payment.status == "processing"  # seen, not final
    chain_env.node.mine(CONFIRMATIONS)
    chain_env.poll()
    payment = PaymentTransaction.objects.get(pk=payment.id)
    assert payment.status == "confirmed", payment.review_reasons
    assert Order.objects.get(pk=order.id).status == "paid"
    return payment


def test_escrow_token_deposit_held_then_released_on_delivery(chain_env, buyer, seller):
    order = chain_order(buyer, seller, "USDC", "40")
    payment = start_payment(order, "escrow", details={"seller_address": chain_env.seller_wallet})
    instructions = payment.provider_data["instructions"]
    assert instructions["escrow_id"] == payment.escrow_id and len(payment.escrow_id) == 66
    assert instructions["contract_address"] == chain_env.escrow.lower()
    approve, deposit = instructions["transaction_requests"]
    assert approve["to"] == chain_env.token.lower() and deposit["to"] == chain_env.escrow.lower()
    assert approve["data"] == rpc.erc20_approve_data(chain_env.escrow, 40_000_000)

    payment = held_escrow(chain_env, order, payment)
    assert payment.sender_address == chain_env.payer.lower() and payment.gas_used > 0

    stranger = UserFactory(username="stranger")
    url = f"/api/orders/{order.id}/confirm-delivery"
    assert api(stranger).post(url).status_code == 404
    response = api(seller).post(url + "/")
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_buyer"
    response = api(buyer).post(url)
    assert response.status_code == 202, response.json()
    release = ChainTransaction.objects.get(payment=payment, purpose="release")
    assert release.from_address == chain_env.operator.lower() and release.nonce is not None
    assert api(buyer).post(url).json()["error"]["code"] == "release_in_progress"

    settle(chain_env)
    payment = PaymentTransaction.objects.get(pk=payment.id)
    assert payment.status == "completed"
    assert Order.objects.get(pk=order.id).status == "completed"
    assert chain_env.token_balance(chain_env.seller_wallet) == 40_000_000
    release.refresh_from_db()
    assert release.status == "confirmed" and release.gas_used > 0


def test_dispute_resolved_by_a_split(chain_env, buyer, seller, staff):
    order = chain_order(buyer, seller, "ETH", "1")
    payment = held_escrow(chain_env, order)
    url = f"/api/orders/{order.id}/dispute"
    response = api(seller).post(url, {"reason": "not received"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "disputed"
    assert Order.objects.get(pk=order.id).status == "disputed"
    # the buyer also opens it on chain with the call handed back
    request = body["transaction_request"]
    chain_env.send(chain_env.payer, request["to"], 0, request["data"])
    settle(chain_env)

    resolve = f"/api/orders/{order.id}/resolve-dispute"
    assert api(buyer).post(resolve, {"buyer_amount": "1", "seller_amount": "0"}).status_code == 403
    bad = api(staff).post(resolve, {"buyer_amount": "0.5", "seller_amount": "0.4"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "split_mismatch"
    before = chain_env.w3.eth.get_balance(chain_env.seller_wallet)
    response = api(staff).post(resolve, {"buyer_amount": "0.3", "seller_amount": "0.7"})
    assert response.status_code == 202, response.json()
    assert [t["purpose"] for t in response.json()["transactions"]] == ["resolve"]
    settle(chain_env)

    payment = PaymentTransaction.objects.get(pk=payment.id)
    (refund,) = Refund.objects.filter(payment=payment)
    assert refund.status == "succeeded" and refund.amount == Decimal("0.3")
    assert payment.status == "partially_refunded" and payment.refunded_amount == Decimal("0.3")
    assert Order.objects.get(pk=order.id).status == "partially_refunded"
    assert chain_env.w3.eth.get_balance(chain_env.seller_wallet) - before == 7 * 10**17


def test_admin_resolves_a_dispute_for_the_buyer_on_chain(chain_env, buyer, seller, staff, client):
    order = chain_order(buyer, seller, "ETH", "1")
    payment = held_escrow(chain_env, order)
    assert api(buyer).post(f"/api/orders/{order.id}/dispute").status_code == 200  # no body
    client.force_login(staff)
    page = f"/admin/payments/paymenttransaction/{payment.id}/resolve-dispute/"
    response = client.post(page, {"outcome": "refund", "note": "never delivered"})
    assert response.status_code == 302
    sent = ChainTransaction.objects.get(payment=payment, purpose="refund")
    assert sent.from_address == chain_env.operator.lower()
    settle(chain_env)

    payment = PaymentTransaction.objects.get(pk=payment.id)
    (refund,) = Refund.objects.filter(payment=payment)
    assert refund.status == "succeeded" and refund.amount == Decimal("1")
    assert payment.status == "refunded"
    assert Order.objects.get(pk=order.id).status == "refunded"


def test_partial_then_full_escrow_refund(chain_env, buyer, seller, staff):
    order = chain_order(buyer, seller, "USDC", "50")
    payment = held_escrow(chain_env, order)
    refund = escrow_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="20")
    assert refund.status == "pending" and refund.provider_reference.startswith("0x")
    settle(chain_env)
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert PaymentTransaction.objects.get(pk=payment.id).status == "partially_refunded"
    assert Order.objects.get(pk=order.id).status == "partially_refunded"
    assert chain_env.token_balance(chain_env.payer) == 20_000_000

    payment_refund(order_id=order.id, actor=Actor.for_admin(staff))  # the rest, same service
    settle(chain_env)
    assert PaymentTransaction.objects.get(pk=payment.id).status == "refunded"
    assert Order.objects.get(pk=order.id).status == "refunded"
    assert chain_env.token_balance(chain_env.payer) == 50_000_000


def test_squatted_escrow_id_does_not_count(chain_env, buyer, seller):
    order = chain_order(buyer, seller, "ETH", "1")
    payment = start_payment(order, "escrow", details={"seller_address": chain_env.seller_wallet})
    # a stranger funds the payment's id first, naming themselves as the seller
    squat = rpc.escrow_deposit_data(payment.escrow_id, chain_env.node.accounts[5], None, 10**18)
    tx_hash = chain_env.send(chain_env.node.accounts[6], chain_env.escrow, 10**18, squat)
    settle(chain_env)
    payment = PaymentTransaction.objects.get(pk=payment.id)
    assert payment.status == "failed" and payment.failure_code == "escrow_terms_mismatch"
    assert payment.review_status == "flagged"
    assert Order.objects.get(pk=order.id).status == "payment_failed"
    with pytest.raises(Exception):  # noqa: B017
        payment_claim_transaction(
            payment_id=payment.id, transaction_hash=tx_hash, chain_id=None, actor=Actor.system()
        )


def test_crypto_refund_from_the_payout_wallet(chain_env, buyer, seller, staff, settings):
    settings.CHAINS = [{**settings.CHAINS[0], "payout_key": chain_env.payout_key}]
    order = chain_order(buyer, seller, "ETH", "1")
    payment = start_payment(order, "crypto")
    (tx_hash,) = chain_env.send_requests(payment)
    chain_env.node.mine(CONFIRMATIONS)
    payment_claim_transaction(
        payment_id=payment.id, transaction_hash=tx_hash, chain_id=None, actor=Actor.system()
    )
    before = chain_env.w3.eth.get_balance(chain_env.payer)
    refund = payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="0.25")
    assert refund.status == "pending"
    settle(chain_env)
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert chain_env.w3.eth.get_balance(chain_env.payer) - before == 25 * 10**16
    assert Order.objects.get(pk=order.id).status == "partially_refunded"


def test_manual_crypto_refund_recorded_by_support_is_verified(chain_env, buyer, seller, staff):
    order = chain_order(buyer, seller, "USDC", "30")
    payment = start_payment(order, "crypto")
    chain_env.mint(chain_env.payer, 30_000_000)
    (tx_hash,) = chain_env.send_requests(payment)
    chain_env.node.mine(CONFIRMATIONS)
    payment_claim_transaction(
        payment_id=payment.id, transaction_hash=tx_hash, chain_id=None, actor=Actor.system()
    )
    refund = payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="10")
    assert refund.status == "pending" and refund.provider_status == "awaiting_manual_refund"
    with pytest.raises(ValidationFailed) as err:  # 66 characters, not hex
        refund_record_transaction(
            refund_id=refund.id, transaction_hash="0x" + "zz" * 32, actor=Actor.for_admin(staff)
        )
    assert err.value.code == "invalid_transaction_hash"
    assert not ChainTransaction.objects.filter(refund=refund).exists()
    # a wrong amount first: recorded, verified, refused
    wrong = chain_env.send(
        chain_env.receiving, chain_env.token, 0, rpc.erc20_transfer_data(chain_env.payer, 10)
    )
    refund_record_transaction(
        refund_id=refund.id, transaction_hash=wrong, actor=Actor.for_admin(staff)
    )
    settle(chain_env)
    refund.refresh_from_db()
    assert refund.status == "failed"

    refund = payment_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="10")
    good = chain_env.send(
        chain_env.receiving, chain_env.token, 0, rpc.erc20_transfer_data(chain_env.payer, 10**7)
    )
    refund_record_transaction(
        refund_id=refund.id, transaction_hash=good, actor=Actor.for_admin(staff)
    )
    settle(chain_env)
    refund.refresh_from_db()
    assert refund.status == "succeeded" and refund.provider_reference == good
    assert PaymentTransaction.objects.get(pk=payment.id).status == "partially_refunded"


def test_partly_refunded_escrow_is_released_and_completes(chain_env, buyer, seller, staff):
    order = chain_order(buyer, seller, "USDC", "50")
    payment = held_escrow(chain_env, order)
    escrow_refund(order_id=order.id, actor=Actor.for_admin(staff), amount="20")
    settle(chain_env)
    assert PaymentTransaction.objects.get(pk=payment.id).status == "partially_refunded"

    response = api(buyer).post(f"/api/orders/{order.id}/confirm-delivery")
    assert response.status_code == 202, response.json()
    settle(chain_env)
    payment = PaymentTransaction.objects.get(pk=payment.id)
    assert payment.status == "completed" and payment.refunded_amount == Decimal("20")
    assert Order.objects.get(pk=order.id).status == "completed"
    assert chain_env.token_balance(chain_env.seller_wallet) == 30_000_000
    assert chain_env.token_balance(chain_env.payer) == 20_000_000
