"""New escrows on EscrowV2: a deposit carries an intent the operator signed naming the payer
(nobody else can fund the id, so it cannot be squatted), the buyer can reclaim after the
authorization expiry, the arbiter's own key resolves disputes, and escrows made on the first
contract keep working after the move. On anvil, through the services and the monitor."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractLogicError

from common.errors import Conflict
from devtools.contracts import deploy
from orders.audit import Actor
from orders.models import Order
from payments.models import ChainTransaction, PaymentTransaction, Refund
from payments.providers.escrow.artifacts import load_artifact
from payments.services.escrow import escrow_open_dispute, escrow_release, escrow_resolve
from tests.devtools.contracts.helpers import compiled_test_contract
from tests.payments.chain.conftest import CONFIRMATIONS, PAYER, chain_order, reload, start_payment

# committed transactions: releases and resolutions are broadcast on commit, as in production
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def settle(env) -> None:  # type: ignore[no-untyped-def]
    env.poll()
    env.node.mine(CONFIRMATIONS)
    env.poll()


def escrow_payment(env, order):  # type: ignore[no-untyped-def]
    return start_payment(
        order, "escrow", details={"seller_address": env.seller_wallet, "payer_address": PAYER}
    )


def held(env, order):  # type: ignore[no-untyped-def]
    payment = escrow_payment(env, order)
    env.send_requests(payment)
    settle(env)
    payment = reload(payment)
    assert payment.status == "confirmed", payment.review_reasons
    return payment


def v2(env):  # type: ignore[no-untyped-def]
    return env.w3.eth.contract(
        address=env.w3.to_checksum_address(env.escrow_v2), abi=load_artifact("EscrowV2").abi_list()
    )


def test_the_deposit_names_its_payer_and_is_released_on_delivery(escrow_v2_env, buyer, seller):
    env = escrow_v2_env
    order = chain_order(buyer, seller, "ETH", "1")
    payment = escrow_payment(env, order)
    instructions = payment.provider_data["instructions"]
    assert instructions["escrow_version"] == 2 and payment.contract_address == env.escrow_v2.lower()
    assert instructions["intent"]["payer"] == PAYER and instructions["intent"]["signature"]
    assert [r["from"] for r in instructions["transaction_requests"]] == [PAYER]
    env.send_requests(payment)
    settle(env)
    payment = reload(payment)
    assert payment.status == "confirmed" and payment.sender_address == PAYER
    escrow_release(order_id=order.id, actor=Actor.for_user(buyer))
    settle(env)
    assert reload(payment).status == "completed"
    assert Order.objects.get(pk=order.id).status == "completed"


def test_a_squatter_cannot_fund_the_buyers_escrow_first(escrow_v2_env, buyer, seller):
    env = escrow_v2_env
    order = chain_order(buyer, seller, "ETH", "1")
    payment = escrow_payment(env, order)
    (request,) = payment.provider_data["instructions"]["transaction_requests"]
    squatter = env.node.accounts[7]
    with pytest.raises(ContractLogicError):  # the signed intent names another payer
        env.send(squatter, request["to"], int(request["value"]), request["data"])
    env.send_requests(payment)  # the buyer's own deposit still goes through
    settle(env)
    assert reload(payment).status == "confirmed"


def test_the_buyer_reclaims_after_the_authorization_expiry(escrow_v2_env, buyer, seller, settings):
    env = escrow_v2_env
    settings.CHAINS = [{**settings.CHAINS[0], "escrow_authorization_seconds": 60}]
    order = chain_order(buyer, seller, "ETH", "1")
    payment = held(env, order)
    env.node.increase_time(20 * 60)  # past the deposit deadline (15 min) and the 60 s after it
    env.node.mine(1)  # the new time holds from the next block
    env.send(
        env.payer,
        env.escrow_v2,
        0,
        v2(env).encode_abi("reclaim", [bytes.fromhex(payment.escrow_id[2:])]),
    )
    settle(env)
    payment = reload(payment)
    assert payment.status == "refunded"
    (refund,) = Refund.objects.filter(payment=payment)
    assert refund.status == "succeeded" and refund.amount == payment.amount


def test_a_dispute_on_chain_is_resolved_with_the_arbiters_key(escrow_v2_env, buyer, seller, staff):
    env = escrow_v2_env
    order = chain_order(buyer, seller, "ETH", "1")
    payment = held(env, order)
    request = escrow_open_dispute(order_id=order.id, actor=Actor.for_user(buyer))[
        "transaction_request"
    ]
    env.send(env.payer, request["to"], 0, request["data"])
    settle(env)
    (resolve,) = escrow_resolve(
        order_id=order.id, buyer_amount="0.4", seller_amount="0.6", actor=Actor.for_admin(staff)
    )
    assert resolve.purpose == ChainTransaction.Purpose.RESOLVE
    assert resolve.from_address == env.node.accounts[5].lower()  # the arbiter, not the operator
    settle(env)
    payment = reload(payment)
    assert payment.status != "disputed"
    assert [str(r.amount) for r in Refund.objects.filter(payment=payment)] == [
        "0.400000000000000000"
    ]


def test_an_escrow_made_on_the_first_contract_keeps_working_after_the_move(
    chain_env, buyer, seller, settings
):
    order = chain_order(buyer, seller, "ETH", "1")
    old = start_payment(order, "escrow", details={"seller_address": chain_env.seller_wallet})
    assert old.contract_address == chain_env.escrow.lower()
    settings.CHAINS = [  # the chain moves to EscrowV2 for new escrows
        {**settings.CHAINS[0], "escrow_contract": chain_env.escrow_v2, "escrow_version": 2}
    ]
    chain_env.send_requests(old)
    settle(chain_env)
    assert reload(old).status == "confirmed"
    escrow_release(order_id=order.id, actor=Actor.for_user(buyer))
    settle(chain_env)
    assert PaymentTransaction.objects.get(pk=old.id).status == "completed"


def test_after_the_authorization_expiry_the_operator_no_longer_releases(
    escrow_v2_env, buyer, seller, settings
):
    env = escrow_v2_env
    order = chain_order(buyer, seller, "ETH", "1")
    payment = held(env, order)
    intent = dict(payment.provider_data["intent"])
    intent["authorization_expiry"] = "1"  # long past
    PaymentTransaction.objects.filter(pk=payment.id).update(
        provider_data={**payment.provider_data, "intent": intent}
    )
    with pytest.raises(Conflict) as err:
        escrow_release(order_id=order.id, actor=Actor.for_user(buyer))
    assert err.value.code == "escrow_authorization_expired"
    assert not ChainTransaction.objects.filter(payment=payment, purpose="release")


def test_a_seller_refusing_the_coin_is_owed_and_staff_are_told(escrow_v2_env, buyer, seller):
    env = escrow_v2_env
    receiver = deploy.deploy_contract(
        env.w3, env.node.accounts[0], compiled_test_contract("RejectingReceiver")
    )
    order = chain_order(buyer, seller, "ETH", "1")
    payment = start_payment(
        order, "escrow", details={"seller_address": receiver, "payer_address": PAYER}
    )
    env.send_requests(payment)
    settle(env)
    escrow_release(order_id=order.id, actor=Actor.for_user(buyer))
    settle(env)
    payment = reload(payment)
    assert payment.status == "completed"  # released: the escrow is closed on chain
    (flag,) = [r for r in payment.review_reasons if r["reason"] == "payout_deferred"]
    assert flag["details"]["recipient"] == receiver.lower()
    assert flag["details"]["amount_base_units"] == str(10**18)
    assert flag["details"]["withdraw"].startswith("0x51cff8d9")  # withdraw(address)
