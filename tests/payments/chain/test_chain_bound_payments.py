"""Crypto payments bound on chain: the buyer pays through the Payments contract with an intent
the operator signed for that payment alone, and only the contract's ``Paid`` event naming the
payment credits it. A claimed hash is a hint to look now: it can neither pay another buyer's
order nor block one. On anvil, against the deployed contract and the real monitor."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from rest_framework.test import APIClient

from common.errors import ValidationFailed
from orders.audit import Actor
from orders.models import OrderPaymentEvent
from payments.models import ChainCursor, PaymentTransaction
from payments.providers.chain import client as rpc
from payments.services.checkout import checkout_payment_open
from payments.services.payments import payment_cancel
from tests.payments.chain.conftest import CONFIRMATIONS, chain_order, claim, reload, start_payment

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CLAIM_URL = "/api/orders/payment/monitor-blockchain"


def settle(env) -> None:  # type: ignore[no-untyped-def]
    """Mine past the confirmations and let the monitor see it (two passes: mined, then deep)."""
    env.poll()
    env.node.mine(CONFIRMATIONS)
    env.poll()


def signed_pay_tx(env, payment) -> bytes:  # type: ignore[no-untyped-def]
    """The payment's pay call, signed locally by the payer (kept for a re-send)."""
    (request,) = payment.provider_data["instructions"]["transaction_requests"]
    return env.signed(request["to"], int(request["value"]), request["data"], gas=200_000)


def test_instructions_carry_an_intent_the_operator_signed_for_this_payment(
    bound_env, buyer, seller
):
    payment = start_payment(chain_order(buyer, seller, "USDC", "10"), "crypto")
    instructions = payment.provider_data["instructions"]
    intent = instructions["intent"]
    assert instructions["scheme"] == "contract"
    assert intent["payment_id"] == payment.chain_payment_id == instructions["payment_id"]
    assert intent["payment_id"] == "0x" + rpc.payment_id_for(payment.id).hex()
    assert intent["token"] == bound_env.token.lower() and intent["amount"] == "10000000"
    assert intent["recipient"] == bound_env.receiving.lower()
    assert int(intent["deadline"]) == int(payment.expires_at.timestamp())
    approve, pay = instructions["transaction_requests"]
    assert approve["to"] == bound_env.token.lower() and pay["to"] == bound_env.payments.lower()
    assert "payer_address" not in instructions  # optional now, and it decides nothing
    # the signature recovers to the operator, and the contract computes the same digest
    intent_obj = rpc.PaymentIntent(
        payment_id=intent["payment_id"],
        token=intent["token"],
        amount=int(intent["amount"]),
        recipient=intent["recipient"],
        fee_amount=int(intent["fee_amount"]),
        fee_recipient=intent["fee_recipient"],
        deadline=int(intent["deadline"]),
    )
    message = encode_typed_data(
        full_message=rpc.intent_typed_data(intent_obj, bound_env.chain_id, bound_env.payments)
    )
    signer = Account.recover_message(message, signature=bytes.fromhex(intent["signature"][2:]))
    assert signer.lower() == bound_env.operator.lower()


def test_eth_through_the_contract_is_credited_without_any_claim(bound_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    before = bound_env.w3.eth.get_balance(bound_env.w3.to_checksum_address(bound_env.receiving))
    (tx_hash,) = bound_env.send_requests(payment)
    bound_env.poll()
    payment = reload(payment)
    assert payment.status == "processing" and payment.transaction_hash == tx_hash
    assert payment.sender_address == bound_env.payer.lower()
    bound_env.node.mine(CONFIRMATIONS)
    bound_env.poll()
    payment = reload(payment)
    assert payment.status == "confirmed" and payment.order.status == "paid"
    after = bound_env.w3.eth.get_balance(bound_env.w3.to_checksum_address(bound_env.receiving))
    assert after - before == 5 * 10**16  # exactly the amount, to the receiving address
    assert OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").count() == 1


def test_a_token_payment_approves_then_pays_exactly(bound_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "USDC", "10"), "crypto")
    bound_env.mint(bound_env.payer, 25_000_000)
    before = bound_env.token_balance(bound_env.receiving)
    bound_env.send_requests(payment)
    settle(bound_env)
    assert reload(payment).status == "confirmed"
    assert bound_env.token_balance(bound_env.receiving) - before == 10_000_000
    assert bound_env.token_balance(bound_env.payer) == 15_000_000


def test_a_thief_claiming_the_victims_mined_transaction_gets_nothing(
    bound_env, buyer, seller, staff
):
    victim = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    thief = start_payment(chain_order(staff, seller, "ETH", "0.5"), "crypto")
    (tx_hash,) = bound_env.send_requests(victim)  # the victim pays and claims nothing
    api = APIClient()
    api.force_authenticate(staff)
    response = api.post(
        CLAIM_URL, {"transaction_id": str(thief.id), "transaction_hash": tx_hash}, format="json"
    )
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    thief = reload(thief)
    assert thief.transaction_hash is None and thief.status == "pending"
    settle(bound_env)
    assert reload(thief).status == "pending" and reload(thief).order.status != "paid"
    victim = reload(victim)
    assert victim.status == "confirmed" and victim.transaction_hash == tx_hash
    # the victim's own claim (late, redundant) is fine: the hash was never taken
    assert claim(victim, tx_hash).status == "confirmed"


def test_a_thief_claiming_a_transaction_from_the_mempool_gets_nothing(
    bound_env, buyer, seller, staff
):
    victim = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    thief = start_payment(chain_order(staff, seller, "ETH", "0.5"), "crypto")
    bound_env.node.set_automine(False)
    raw = signed_pay_tx(bound_env, victim)
    tx_hash = "0x" + bytes(bound_env.w3.eth.send_raw_transaction(raw)).hex()
    # the thief reads the pending transaction and claims it first
    assert claim(thief, tx_hash).transaction_hash is None
    # the victim's claim of the pending hash is a hint too: nothing is recorded before it is mined
    assert claim(victim, tx_hash).transaction_hash is None
    bound_env.node.mine(1)
    settle(bound_env)
    assert reload(victim).status == "confirmed"
    thief = reload(thief)
    assert thief.status == "pending" and thief.transaction_hash is None


def test_a_plain_transfer_never_pays_a_bound_payment(bound_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    tx_hash = bound_env.send(bound_env.payer, bound_env.receiving, 5 * 10**17)
    assert claim(payment, tx_hash).transaction_hash is None
    settle(bound_env)
    payment = reload(payment)
    assert payment.status == "pending" and payment.transaction_hash is None


def test_a_reorg_before_finality_drops_it_and_it_confirms_once_when_mined_again(
    bound_env, buyer, seller
):
    node = bound_env.node
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    raw = signed_pay_tx(bound_env, payment)
    tx_hash = bound_env.send_raw(raw)
    bound_env.poll()
    payment = reload(payment)
    assert payment.status == "processing" and payment.transaction_hash == tx_hash
    old_block = payment.block_number

    node.reorg(1)  # the block holding it is replaced: the payment is gone
    report = bound_env.poll()
    payment = reload(payment)
    assert report.reorg_at == old_block and report.moved_back == 1
    assert payment.status == "pending" and payment.block_number is None
    node.mine(CONFIRMATIONS + 1)
    bound_env.poll()
    bound_env.poll()
    assert reload(payment).status == "pending"  # never confirmed without the event

    bound_env.send_raw(raw)  # mined again, in another block
    settle(bound_env)
    bound_env.poll()
    payment = reload(payment)
    assert payment.status == "confirmed" and payment.block_number > old_block
    assert OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").count() == 1


def test_the_nodes_finalized_block_confirms_before_the_confirmations(
    bound_env, buyer, seller, settings
):
    # far more confirmations than anvil's finalized lag (64 blocks): finality comes first
    settings.CHAINS = [{**settings.CHAINS[0], "required_confirmations": 500}]
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    bound_env.send_requests(payment)
    bound_env.poll()
    assert reload(payment).status == "processing"
    bound_env.node.mine(30)
    bound_env.poll()
    assert reload(payment).status == "processing"  # neither final nor 500 deep
    bound_env.node.mine(40)  # now below anvil's finalized block
    bound_env.poll()
    payment = reload(payment)
    assert payment.status == "confirmed" and payment.confirmations < 500


def test_money_for_a_cancelled_payment_is_flagged_not_credited(bound_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    payment_cancel(payment_id=payment.id, actor=Actor.for_user(buyer))
    bound_env.send_requests(payment)  # the intent is still valid on chain until its deadline
    settle(bound_env)
    payment = reload(payment)
    assert payment.status == "cancelled"
    assert [r["reason"] for r in payment.review_reasons] == ["paid_after_close"]


def test_without_a_payment_contract_new_crypto_payments_are_refused(
    chain_env, buyer, seller, settings
):
    settings.CHAINS = [{**settings.CHAINS[0], "legacy_transfers": False}]
    order = chain_order(buyer, seller, "ETH", "0.5")
    with pytest.raises(ValidationFailed) as err:
        checkout_payment_open(order_id=order.id, method="crypto", actor=Actor.for_user(buyer))
    assert err.value.code == "chain_not_configured"
    assert not PaymentTransaction.objects.filter(order=order).exists()


def test_a_payment_mined_before_the_first_pass_is_found_by_the_backfill(
    bound_env, buyer, seller, settings
):
    """Without a cursor (the first pass, or a lost one) the monitor starts where the oldest
    open payment was created, not a reorg window below the head: a payment mined far below
    the head before any poll is still credited."""
    settings.CHAINS = [{**settings.CHAINS[0], "reorg_window": 8, "max_blocks_per_pass": 50}]
    ChainCursor.objects.filter(chain_id=bound_env.chain_id).delete()
    bound_env.node.mine(20)
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    (tx_hash,) = bound_env.send_requests(payment)
    paid_at = int(bound_env.w3.eth.get_transaction_receipt(tx_hash)["blockNumber"])
    bound_env.node.mine(120)  # far beyond the reorg window
    report = bound_env.poll()
    assert report.backfill_from is not None and report.backfill_from <= paid_at
    for _ in range(5):  # bounded ranges: 50 blocks a pass
        if reload(payment).status == "confirmed":
            break
        bound_env.poll()
    assert reload(payment).status == "confirmed"


def test_block_at_or_before_finds_the_last_block_not_after_a_time(bound_env):
    client = rpc.client_for(bound_env.node.url)
    bound_env.node.mine(40)
    head = client.block_number()
    stamps = {h: v[1] for h, v in client.block_headers(list(range(head + 1))).items() if v}
    for target in (head, head // 2, 1):
        moment = stamps[target]
        expected = max(h for h, t in stamps.items() if t <= moment)
        assert client.block_at_or_before(moment) == expected
    assert client.block_at_or_before(stamps[0] - 1) == 0
    assert client.block_at_or_before(stamps[head] + 1000) == head
