"""A direct crypto payment is bound to the wallet the buyer names when creating it: only a
transaction sent from that wallet, mined after the payment was made, pays it. Without the
binding anyone watching the chain could open an order for the same amount and claim another
buyer's transaction first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from common.errors import ValidationFailed
from orders.audit import Actor
from payments.models import PaymentTransaction
from payments.providers.chain import client as rpc
from payments.services.payments import payment_create, payment_start
from tests.payments.chain.conftest import PAYER, chain_order, claim, reload, start_payment

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_instructions_name_the_payers_wallet(chain_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "USDC", "10"), "crypto")
    instructions = payment.provider_data["instructions"]
    assert instructions["payer_address"] == PAYER
    assert [r["from"] for r in instructions["transaction_requests"]] == [PAYER]
    assert payment.provider_data["payer_address"] == PAYER


def test_another_buyers_transaction_cannot_be_claimed(chain_env, buyer, seller, staff):
    victim = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    (tx_hash,) = chain_env.send_requests(victim)  # the victim pays, not yet claimed
    thief_wallet = chain_env.node.accounts[6]
    thief = start_payment(
        chain_order(staff, seller, "ETH", "0.5"),
        "crypto",
        details={"payer_address": thief_wallet.lower()},
    )
    with pytest.raises(ValidationFailed) as err:
        claim(thief, tx_hash)
    assert err.value.code == "wrong_sender"
    assert reload(thief).transaction_hash is None and reload(thief).status == "pending"
    assert claim(victim, tx_hash).status in ("processing", "confirmed")


def test_a_transaction_mined_before_the_payment_is_refused(chain_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    (tx_hash,) = chain_env.send_requests(payment)
    # the payment made well after the block (beyond the clock skew allowed)
    PaymentTransaction.objects.filter(pk=payment.id).update(
        created_at=timezone.now() + timedelta(minutes=10)
    )
    with pytest.raises(ValidationFailed) as err:
        claim(payment, tx_hash)
    assert err.value.code == "transaction_predates_payment"


def test_transfer_log_matching_is_by_the_payers_wallet(chain_env, buyer, seller, staff):
    other_wallet = chain_env.node.accounts[6]
    mine = start_payment(chain_order(buyer, seller, "USDC", "10"), "crypto")
    theirs = start_payment(
        chain_order(staff, seller, "USDC", "10"),
        "crypto",
        details={"payer_address": other_wallet.lower()},
    )
    chain_env.mint(chain_env.payer, 10_000_000)
    tx_hash = chain_env.send(
        chain_env.payer, chain_env.token, 0, rpc.erc20_transfer_data(chain_env.receiving, 10**7)
    )
    report = chain_env.poll()
    assert report.matched == 1 and report.ambiguous == 0
    assert reload(mine).transaction_hash == tx_hash
    assert reload(theirs).transaction_hash is None and reload(theirs).review_status == "none"

    # a transfer from a wallet no payment names pays nobody
    chain_env.mint(chain_env.node.accounts[7], 10_000_000)
    chain_env.send(
        chain_env.node.accounts[7],
        chain_env.token,
        0,
        rpc.erc20_transfer_data(chain_env.receiving, 10**7),
    )
    report = chain_env.poll()
    assert report.matched == 0 and reload(theirs).transaction_hash is None


def test_a_crypto_payment_without_a_wallet_is_refused(chain_env, buyer, seller):
    order = chain_order(buyer, seller)
    actor = Actor.for_user(buyer)
    payment = payment_create(order_id=order.id, method="crypto", actor=actor)
    with pytest.raises(ValidationFailed) as err:
        payment_start(payment_id=payment.id, actor=actor)
    assert err.value.code == "payer_address_required"
