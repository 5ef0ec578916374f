"""Deposit addresses: a plain transfer (native coin or token) to a payment's own CREATE2
address pays that payment and no other, in one or more parts, with no hash to claim. Short:
``partially_paid``; over: confirmed and the excess sent back exactly once; reorged away before
finality: not confirmed, then confirmed once when mined again. On anvil, with the deployed
factory, the real monitor and the payout wallet."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from orders.audit import Actor
from orders.models import OrderPaymentEvent
from payments.chain import deposits
from payments.models import ChainDeposit, ChainTransaction, PaymentTransaction
from payments.providers.chain import client as rpc
from payments.providers.chain.registry import get_chain
from payments.providers.escrow.artifacts import load_artifact
from payments.services.payments import payment_cancel, payment_retry
from receipts.models import PaymentReceipt
from tests.payments.chain.conftest import CONFIRMATIONS, chain_order, reload, start_payment

# committed transactions: the sweeps and excess returns are broadcast on commit, as in production
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CT = ChainTransaction


def settle(env, passes: int = 2) -> None:  # type: ignore[no-untyped-def]
    """Mine it deep, let the monitor see it, then run the follow-ups job (sweeps, returns)."""
    env.poll()
    env.node.mine(CONFIRMATIONS)
    for _ in range(passes):
        env.poll()
    followups(env)


def followups(env) -> int:  # type: ignore[no-untyped-def]
    return deposits.deposit_followups(get_chain(env.chain_id))


def balance(env, who: str) -> int:  # type: ignore[no-untyped-def]
    return int(env.w3.eth.get_balance(env.w3.to_checksum_address(who)))


def status_of(payment, user):  # type: ignore[no-untyped-def]
    api = APIClient()
    api.force_authenticate(user)
    response = api.get(f"/api/orders/{payment.order_id}/payment-status")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_deposit_address_is_the_factorys_create2_address(deposit_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    instructions = payment.provider_data["instructions"]
    factory = deposit_env.w3.eth.contract(
        address=deposit_env.w3.to_checksum_address(deposit_env.deposit_factory),
        abi=load_artifact("DepositFactory").abi_list(),
    )
    salt = rpc.deposit_salt_for(payment.id)
    on_chain = factory.functions.deposit_address(salt).call().lower()
    assert instructions["deposit_address"] == payment.deposit_address == on_chain
    other = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    assert other.deposit_address != payment.deposit_address


def test_one_wei_is_partially_paid_and_the_top_up_completes_it(deposit_env, buyer, seller):
    env = deposit_env
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    address = payment.deposit_address
    env.send_raw(env.signed(address, 1))
    env.poll()
    payment = reload(payment)
    assert payment.status == "partially_paid"  # seen, shallow
    env.node.mine(CONFIRMATIONS)
    env.poll()
    payment = reload(payment)
    assert payment.status == "partially_paid" and int(payment.received_base_units) == 1
    assert payment.order.status != "paid" and not PaymentReceipt.objects.filter(payment=payment)
    shown = status_of(payment, buyer)["transactions"][0]
    assert shown["status"] == "partially_paid" and shown["deposit_address"] == address
    assert shown["received_amount"] == "0.000000000000000001"
    assert shown["outstanding_amount"] == "0.049999999999999999"
    assert not CT.objects.filter(payment=payment)  # nothing swept while it is open

    before = balance(env, env.receiving)
    env.send_raw(env.signed(address, 5 * 10**16 - 1))  # the rest, 21,000 gas again
    settle(env)
    payment = reload(payment)
    assert payment.status == "confirmed" and payment.order.status == "paid"
    assert int(payment.received_base_units) == 5 * 10**16
    assert payment.sender_address == env.payer.lower() and payment.transaction_hash is None
    assert OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").count() == 1
    # the operator swept the address to the receiving address once the payment was paid
    (sweep,) = CT.objects.filter(payment=payment, purpose=CT.Purpose.SWEEP)
    env.node.mine(CONFIRMATIONS)
    env.poll()
    assert balance(env, env.receiving) - before == 5 * 10**16
    assert balance(env, address) == 0
    sweep.refresh_from_db()
    assert sweep.status == "confirmed"


def test_an_overpayment_confirms_and_the_excess_goes_back_exactly_once(deposit_env, buyer, seller):
    env = deposit_env
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    env.send(env.payer, payment.deposit_address, 6 * 10**16)
    before = balance(env, env.payer)
    settle(env)
    payment = reload(payment)
    assert payment.status == "confirmed"
    assert "overpayment" in [r["reason"] for r in payment.review_reasons]
    (deposit,) = ChainDeposit.objects.filter(payment=payment)
    assert int(deposit.excess_base_units) == 10**16
    # the follow-ups job runs again: still one return (and one sweep)
    env.poll()
    assert followups(env) == 0
    (excess,) = CT.objects.filter(payment=payment, purpose=CT.Purpose.EXCESS_RETURN)
    assert excess.to_address == env.payer.lower() and int(excess.value_base_units) == 10**16
    env.node.mine(CONFIRMATIONS)
    env.poll()
    assert balance(env, env.payer) - before == 10**16  # the payer paid no gas since
    excess.refresh_from_db()
    assert excess.status == "confirmed"


def test_a_token_transfer_to_the_deposit_address_pays_it(deposit_env, buyer, seller):
    env = deposit_env
    payment = start_payment(chain_order(buyer, seller, "USDC", "10"), "crypto")
    env.mint(env.payer, 10_000_000)
    before = env.token_balance(env.receiving)
    env.send(env.payer, env.token, 0, rpc.erc20_transfer_data(payment.deposit_address, 10_000_000))
    settle(env)
    assert reload(payment).status == "confirmed"
    env.node.mine(CONFIRMATIONS)
    env.poll()
    assert env.token_balance(env.receiving) - before == 10_000_000  # swept
    assert env.token_balance(payment.deposit_address) == 0


def test_value_at_another_payments_address_never_pays_this_one(deposit_env, buyer, seller, staff):
    env = deposit_env
    mine = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    theirs = start_payment(chain_order(staff, seller, "ETH", "0.05"), "crypto")
    env.send(env.payer, mine.deposit_address, 5 * 10**16)
    settle(env)
    assert reload(mine).status == "confirmed"
    assert reload(theirs).status == "pending" and not ChainDeposit.objects.filter(payment=theirs)


def test_a_reorg_drops_a_deposit_before_finality_and_it_confirms_once_mined_again(
    deposit_env, buyer, seller
):
    env, node = deposit_env, deposit_env.node
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    raw = env.signed(payment.deposit_address, 5 * 10**16)
    env.send_raw(raw)
    env.poll()
    assert reload(payment).status == "processing"
    node.reorg(1)  # the block holding it is replaced: the transfer is gone
    env.poll()
    payment = reload(payment)
    assert payment.status == "pending" and int(payment.received_base_units) == 0
    assert ChainDeposit.objects.get(payment=payment).status == "dropped"
    node.mine(CONFIRMATIONS + 1)
    env.poll()
    assert reload(payment).status == "pending"
    env.send_raw(raw)  # mined again
    settle(env)
    payment = reload(payment)
    assert payment.status == "confirmed" and int(payment.received_base_units) == 5 * 10**16
    assert OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").count() == 1


def test_a_transfer_after_expiry_is_credited_and_flagged(deposit_env, buyer, seller):
    env = deposit_env
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    PaymentTransaction.objects.filter(pk=payment.id).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    env.poll()
    assert reload(payment).status == "expired"
    env.send(env.payer, payment.deposit_address, 5 * 10**16)
    settle(env)
    payment = reload(payment)
    assert payment.status == "confirmed"
    assert "late_payment" in [r["reason"] for r in payment.review_reasons]


def test_paid_through_the_contract_and_the_address_too_returns_the_second(
    deposit_env, buyer, seller
):
    env = deposit_env
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    env.send_requests(payment)  # through the contract
    settle(env)
    assert reload(payment).status == "confirmed"
    env.send(env.payer, payment.deposit_address, 5 * 10**16)  # and again, by plain transfer
    settle(env)
    payment = reload(payment)
    assert payment.status == "confirmed"
    assert "paid_twice" in [r["reason"] for r in payment.review_reasons]
    (deposit,) = ChainDeposit.objects.filter(payment=payment)
    assert int(deposit.excess_base_units) == 5 * 10**16  # all of it goes back
    (back,) = CT.objects.filter(payment=payment, purpose=CT.Purpose.EXCESS_RETURN)
    assert back.to_address == env.payer.lower() and int(back.value_base_units) == 5 * 10**16


def test_a_partly_paid_payment_expires_for_staff_to_return_and_allows_a_new_attempt(
    deposit_env, buyer, seller
):
    env = deposit_env
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    env.send(env.payer, payment.deposit_address, 10**16)
    settle(env)
    assert reload(payment).status == "partially_paid"
    PaymentTransaction.objects.filter(pk=payment.id).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    env.poll()
    payment = reload(payment)
    assert payment.status == "expired"
    assert "partial_payment_expired" in [r["reason"] for r in payment.review_reasons]
    retry = payment_retry(order_id=payment.order_id, actor=Actor.for_user(buyer))
    assert retry.id != payment.id and retry.status == "pending"


def test_money_at_a_cancelled_payments_address_goes_back_to_each_sender(deposit_env, buyer, seller):
    env = deposit_env
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    payment_cancel(payment_id=payment.id, actor=Actor.for_user(buyer))
    other = env.node.accounts[5]
    env.send(env.payer, payment.deposit_address, 3 * 10**16)
    env.send(other, payment.deposit_address, 10**16)
    settle(env)
    payment = reload(payment)
    assert payment.status == "cancelled"
    assert "paid_after_close" in [r["reason"] for r in payment.review_reasons]
    returns = {
        (t.to_address, int(t.value_base_units))
        for t in CT.objects.filter(payment=payment, purpose=CT.Purpose.EXCESS_RETURN)
    }
    assert returns == {(env.payer.lower(), 3 * 10**16), (other.lower(), 10**16)}


def test_a_contract_payment_after_the_address_paid_it_is_flagged_paid_twice(
    deposit_env, buyer, seller
):
    env = deposit_env
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    env.send(env.payer, payment.deposit_address, 5 * 10**16)
    settle(env)
    assert reload(payment).status == "confirmed"
    env.send_requests(payment)  # the intent is still valid: the contract takes it
    settle(env)
    payment = reload(payment)
    assert payment.status == "confirmed" and payment.transaction_hash is None
    assert "paid_twice" in [r["reason"] for r in payment.review_reasons]


def test_a_block_is_read_for_deposits_once_unless_its_hash_changes(deposit_env, buyer, seller):
    env, node = deposit_env, deposit_env.node
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.05"), "crypto")
    env.send_raw(env.signed(payment.deposit_address, 5 * 10**16))
    first = env.poll()
    assert reload(payment).status == "processing"
    node.mine(2)
    second = env.poll()  # only the two new blocks: the deposit is not seen twice
    assert second.scan_from == first.to_block and second.to_block == first.to_block + 2
    assert second.deposits == 0 and ChainDeposit.objects.filter(payment=payment).count() == 1
    # the last two blocks replaced (by blocks holding another transfer, so that their hashes
    # change whatever the clock): read again, from below them
    node.reorg(2, [({"from": node.accounts[4], "to": node.accounts[5], "value": 1}, 0)])
    third = env.poll()
    assert third.scan_from == second.to_block - 2
    node.mine(CONFIRMATIONS)
    env.poll()
    payment = reload(payment)  # its own block never changed: final by its hash
    assert payment.status == "confirmed" and int(payment.received_base_units) == 5 * 10**16
    assert ChainDeposit.objects.get(payment=payment).status == "final"
