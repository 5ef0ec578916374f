"""The Escrow contract on a real anvil: flows, balances in base units, events, and refusals."""

from __future__ import annotations

import dataclasses

import pytest
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from devtools.contracts import deploy
from devtools.contracts.build import CONTRACTS_DIR
from payments.providers.escrow.artifacts import EscrowState
from tests.devtools.contracts.helpers import EscrowSetup, gas_cost, new_escrow_id

pytestmark = pytest.mark.integration

ETH = 10**18
USDC = 10**6  # TestToken has 6 decimals
ESCROW_SOURCE = CONTRACTS_DIR / "Escrow.vy"


def reverts(match: str) -> pytest.RaisesContext[ContractLogicError]:
    return pytest.raises(ContractLogicError, match=match)


# --- happy paths --------------------------------------------------------------------------


@pytest.mark.parametrize("releaser", ["buyer", "operator"])
def test_native_deposit_then_release(es: EscrowSetup, releaser: str) -> None:
    eid, amount = new_escrow_id(), 3 * ETH + 7
    buyer_before, seller_before = es.balance(es.buyer), es.balance(es.seller)

    receipt = es.deposit_native(eid, amount)
    assert es.balance(es.escrow.address) == amount
    assert es.balance(es.buyer) == buyer_before - amount - gas_cost(receipt)
    assert es.state(eid) == (
        es.buyer,
        es.seller,
        deploy.NATIVE_TOKEN,
        amount,
        amount,
        0,
        0,
        EscrowState.FUNDED,
    )
    (event,) = es.escrow.events.Deposited().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {
        "escrow_id": eid,
        "buyer": es.buyer,
        "seller": es.seller,
        "token": deploy.NATIVE_TOKEN,
        "amount": amount,
    }

    who = getattr(es, releaser)
    receipt = es.send(who, es.escrow.functions.release(eid))
    assert es.balance(es.seller) == seller_before + amount
    assert es.balance(es.escrow.address) == 0
    assert es.state(eid)[4:] == (0, amount, 0, EscrowState.CLOSED)
    (event,) = es.escrow.events.Released().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {"escrow_id": eid, "seller": es.seller, "amount": amount, "by": who}


def test_erc20_approve_deposit_then_release(es: EscrowSetup) -> None:
    eid, amount = new_escrow_id(), 125 * USDC + 1
    es.deposit_token(eid, amount)
    assert es.balance(es.buyer, es.token) == 0
    assert es.balance(es.escrow.address, es.token) == amount
    assert es.escrow.functions.escrows(eid).call() == (
        es.buyer,
        es.seller,
        es.token.address,
        amount,
        0,
        0,
        EscrowState.FUNDED,
    )

    es.send(es.operator, es.escrow.functions.release(eid))
    assert es.balance(es.seller, es.token) == amount
    assert es.balance(es.escrow.address, es.token) == 0
    assert es.escrow.functions.remaining(eid).call() == 0


def test_partial_refund_then_release_the_rest(es: EscrowSetup) -> None:
    eid, amount, part = new_escrow_id(), 100 * USDC, 30 * USDC + 5
    es.deposit_token(eid, amount)

    receipt = es.send(es.seller, es.escrow.functions.refund(eid, part))
    (event,) = es.escrow.events.Refunded().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {
        "escrow_id": eid,
        "buyer": es.buyer,
        "amount": part,
        "remaining": amount - part,
        "by": es.seller,
    }
    assert es.balance(es.buyer, es.token) == part
    assert es.state(eid)[4:] == (amount - part, 0, part, EscrowState.FUNDED)

    receipt = es.send(es.buyer, es.escrow.functions.release(eid))
    (event,) = es.escrow.events.Released().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["amount"] == amount - part
    assert es.balance(es.seller, es.token) == amount - part
    assert es.balance(es.buyer, es.token) == part
    assert es.balance(es.escrow.address, es.token) == 0
    assert es.state(eid)[4:] == (0, amount - part, part, EscrowState.CLOSED)


@pytest.mark.parametrize("refunder", ["seller", "operator"])
def test_full_native_refund_closes(es: EscrowSetup, refunder: str) -> None:
    eid, amount = new_escrow_id(), 2 * ETH
    buyer_before = es.balance(es.buyer)
    deposit_receipt = es.deposit_native(eid, amount)

    es.send(getattr(es, refunder), es.escrow.functions.refund(eid, amount))
    assert es.balance(es.buyer) == buyer_before - gas_cost(deposit_receipt)
    assert es.balance(es.escrow.address) == 0
    assert es.state(eid)[4:] == (0, 0, amount, EscrowState.CLOSED)
    with reverts("Escrow: not funded"):
        es.send(es.buyer, es.escrow.functions.release(eid))


@pytest.mark.parametrize("opener", ["buyer", "seller"])
def test_dispute_then_resolve_by_split(es: EscrowSetup, opener: str) -> None:
    eid, amount, refund_first = new_escrow_id(), 1_000 * USDC + 3, 100 * USDC
    es.deposit_token(eid, amount)
    es.send(es.operator, es.escrow.functions.refund(eid, refund_first))
    left = amount - refund_first
    buyer_part, seller_part = 333_333_333, left - 333_333_333

    receipt = es.send(getattr(es, opener), es.escrow.functions.dispute(eid))
    (event,) = es.escrow.events.Disputed().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {"escrow_id": eid, "by": getattr(es, opener)}
    assert es.state(eid)[7] == EscrowState.DISPUTED

    receipt = es.send(es.arbiter, es.escrow.functions.resolve(eid, buyer_part, seller_part))
    (event,) = es.escrow.events.Resolved().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {
        "escrow_id": eid,
        "buyer_amount": buyer_part,
        "seller_amount": seller_part,
        "by": es.arbiter,
    }
    assert es.balance(es.buyer, es.token) == refund_first + buyer_part
    assert es.balance(es.seller, es.token) == seller_part
    assert es.balance(es.escrow.address, es.token) == 0
    assert es.state(eid)[4:] == (0, seller_part, refund_first + buyer_part, EscrowState.CLOSED)


@pytest.mark.parametrize("split", [(1, 0), (0, 1)])
def test_resolve_all_to_one_side_native(es: EscrowSetup, split: tuple[int, int]) -> None:
    eid, amount = new_escrow_id(), ETH
    es.deposit_native(eid, amount)
    es.send(es.seller, es.escrow.functions.dispute(eid))
    seller_before = es.balance(es.seller)
    buyer_before = es.balance(es.buyer)
    es.send(es.arbiter, es.escrow.functions.resolve(eid, split[0] * amount, split[1] * amount))
    assert es.balance(es.buyer) == buyer_before + split[0] * amount
    assert es.balance(es.seller) == seller_before + split[1] * amount
    assert es.balance(es.escrow.address) == 0


def test_escrows_are_independent(es: EscrowSetup) -> None:
    a, b = new_escrow_id(), new_escrow_id()
    es.deposit_native(a, ETH)
    es.deposit_native(b, 2 * ETH)
    es.send(es.buyer, es.escrow.functions.release(a))
    assert es.balance(es.escrow.address) == 2 * ETH
    assert es.state(b)[4:] == (2 * ETH, 0, 0, EscrowState.FUNDED)


def test_events_readable_from_logs(es: EscrowSetup) -> None:
    start = es.w3.eth.block_number + 1
    eid = new_escrow_id()
    es.deposit_token(eid, 10 * USDC)
    es.send(es.seller, es.escrow.functions.refund(eid, 4 * USDC))
    es.send(es.buyer, es.escrow.functions.dispute(eid))
    es.send(es.arbiter, es.escrow.functions.resolve(eid, 1 * USDC, 5 * USDC))

    logs = es.w3.eth.get_logs({"address": es.escrow.address, "fromBlock": start})
    names = []
    for log in logs:
        for event in (
            es.escrow.events.Deposited,
            es.escrow.events.Refunded,
            es.escrow.events.Disputed,
            es.escrow.events.Resolved,
        ):
            if log["topics"][0] == HexBytes(event().topic):
                names.append(event().process_log(log)["event"])
    assert names == ["Deposited", "Refunded", "Disputed", "Resolved"]
    assert all(log["topics"][1] == eid for log in logs)

    (deposited,) = es.escrow.events.Deposited().get_logs(
        from_block=start, argument_filters={"escrow_id": eid}
    )
    assert deposited["args"]["amount"] == 10 * USDC


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["seller", "stranger", "arbiter", "deployer"])
def test_release_only_by_buyer_or_operator(es: EscrowSetup, caller: str) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    with reverts("Escrow: not buyer or operator"):
        es.send(getattr(es, caller), es.escrow.functions.release(eid))


@pytest.mark.parametrize("caller", ["buyer", "stranger", "arbiter", "deployer"])
def test_refund_only_by_seller_or_operator(es: EscrowSetup, caller: str) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    with reverts("Escrow: not seller or operator"):
        es.send(getattr(es, caller), es.escrow.functions.refund(eid, 1))


@pytest.mark.parametrize("caller", ["operator", "stranger", "arbiter"])
def test_dispute_only_by_buyer_or_seller(es: EscrowSetup, caller: str) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    with reverts("Escrow: not buyer or seller"):
        es.send(getattr(es, caller), es.escrow.functions.dispute(eid))


@pytest.mark.parametrize("caller", ["operator", "buyer", "seller", "stranger"])
def test_resolve_only_by_arbiter(es: EscrowSetup, caller: str) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    es.send(es.buyer, es.escrow.functions.dispute(eid))
    with reverts("Escrow: not arbiter"):
        es.send(getattr(es, caller), es.escrow.functions.resolve(eid, ETH, 0))


def test_double_release_reverts(es: EscrowSetup) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    es.send(es.buyer, es.escrow.functions.release(eid))
    with reverts("Escrow: not funded"):
        es.send(es.buyer, es.escrow.functions.release(eid))
    with reverts("Escrow: not funded"):
        es.send(es.operator, es.escrow.functions.release(eid))
    with reverts("Escrow: not funded"):
        es.send(es.seller, es.escrow.functions.refund(eid, 1))


def test_unknown_escrow_cannot_be_touched(es: EscrowSetup) -> None:
    eid = new_escrow_id()
    with reverts("Escrow: not funded"):
        es.send(es.operator, es.escrow.functions.release(eid))
    with reverts("Escrow: not funded"):
        es.send(es.operator, es.escrow.functions.refund(eid, 1))
    with reverts("Escrow: not funded"):
        es.send(es.buyer, es.escrow.functions.dispute(eid))


def test_deposit_twice_for_the_same_id_reverts(es: EscrowSetup) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    with reverts("Escrow: id already used"):
        es.deposit_native(eid, ETH)
    with reverts("Escrow: id already used"):
        es.deposit_token(eid, USDC)
    es.send(es.buyer, es.escrow.functions.release(eid))
    with reverts("Escrow: id already used"):  # also once closed
        es.deposit_native(eid, ETH)


@pytest.mark.parametrize("value", [0, ETH - 1, ETH + 1])
def test_wrong_native_value_reverts(es: EscrowSetup, value: int) -> None:
    call = es.escrow.functions.deposit(new_escrow_id(), es.seller, deploy.NATIVE_TOKEN, ETH)
    with reverts("Escrow: value != amount"):
        es.send(es.buyer, call, value=value)


def test_value_sent_with_a_token_deposit_reverts(es: EscrowSetup) -> None:
    es.fund_token(es.buyer, USDC)
    es.send(es.buyer, es.token.functions.approve(es.escrow.address, USDC))
    call = es.escrow.functions.deposit(new_escrow_id(), es.seller, es.token.address, USDC)
    with reverts("Escrow: value with token"):
        es.send(es.buyer, call, value=1)


def test_bad_deposit_arguments_revert(es: EscrowSetup) -> None:
    zero = deploy.NATIVE_TOKEN
    f = es.escrow.functions
    with reverts("Escrow: amount is zero"):
        es.send(es.buyer, f.deposit(new_escrow_id(), es.seller, zero, 0))
    with reverts("Escrow: seller is zero"):
        es.send(es.buyer, f.deposit(new_escrow_id(), zero, zero, 1), value=1)
    with reverts("Escrow: seller is buyer"):
        es.send(es.buyer, f.deposit(new_escrow_id(), es.buyer, zero, 1), value=1)
    with reverts("Escrow: token has no code"):
        es.send(es.buyer, f.deposit(new_escrow_id(), es.seller, es.stranger, 1))


def test_deposit_without_approval_reverts(es: EscrowSetup) -> None:
    es.fund_token(es.buyer, USDC)
    call = es.escrow.functions.deposit(new_escrow_id(), es.seller, es.token.address, USDC)
    with reverts("allowance too low"):
        es.send(es.buyer, call)


def test_refund_amount_checks(es: EscrowSetup) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    with reverts("Escrow: amount is zero"):
        es.send(es.seller, es.escrow.functions.refund(eid, 0))
    with reverts("Escrow: amount > remaining"):
        es.send(es.seller, es.escrow.functions.refund(eid, ETH + 1))
    es.send(es.seller, es.escrow.functions.refund(eid, ETH // 2))
    with reverts("Escrow: amount > remaining"):
        es.send(es.seller, es.escrow.functions.refund(eid, ETH // 2 + 1))


def test_resolve_when_not_disputed_reverts(es: EscrowSetup) -> None:
    eid = new_escrow_id()
    with reverts("Escrow: not disputed"):  # never funded
        es.send(es.arbiter, es.escrow.functions.resolve(eid, 0, 0))
    es.deposit_native(eid, ETH)
    with reverts("Escrow: not disputed"):  # funded
        es.send(es.arbiter, es.escrow.functions.resolve(eid, ETH, 0))
    es.send(es.buyer, es.escrow.functions.dispute(eid))
    es.send(es.arbiter, es.escrow.functions.resolve(eid, ETH, 0))
    with reverts("Escrow: not disputed"):  # already resolved
        es.send(es.arbiter, es.escrow.functions.resolve(eid, ETH, 0))


@pytest.mark.parametrize("split", [(ETH, 1), (ETH - 1, 0), (0, 0)])
def test_resolve_split_must_equal_remaining(es: EscrowSetup, split: tuple[int, int]) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    es.send(es.seller, es.escrow.functions.dispute(eid))
    with reverts("Escrow: split != remaining"):
        es.send(es.arbiter, es.escrow.functions.resolve(eid, *split))


def test_a_dispute_freezes_release_refund_and_a_second_dispute(es: EscrowSetup) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    es.send(es.buyer, es.escrow.functions.dispute(eid))
    with reverts("Escrow: not funded"):
        es.send(es.operator, es.escrow.functions.release(eid))
    with reverts("Escrow: not funded"):
        es.send(es.operator, es.escrow.functions.refund(eid, 1))
    with reverts("Escrow: not funded"):
        es.send(es.seller, es.escrow.functions.dispute(eid))
    assert es.balance(es.escrow.address) == ETH


def test_dispute_after_close_reverts(es: EscrowSetup) -> None:
    eid = new_escrow_id()
    es.deposit_native(eid, ETH)
    es.send(es.buyer, es.escrow.functions.release(eid))
    with reverts("Escrow: not funded"):
        es.send(es.buyer, es.escrow.functions.dispute(eid))


# --- hostile and odd tokens -------------------------------------------------------------


def test_reentrant_token_cannot_reenter_a_refund(es: EscrowSetup) -> None:
    """The seller is a token contract that calls back into the Escrow while paying out."""
    bad = es.deploy_test_contract("ReentrantToken")
    eid, amount = new_escrow_id(), 1_000 * USDC
    es.deposit_token(eid, amount, token=bad, seller=bad.address)

    # while the operator refunds 600, the token (the seller) tries to refund the other 400
    reentry = es.escrow.functions.refund(eid, 400 * USDC)._encode_transaction_data()
    es.send(es.deployer, bad.functions.arm(es.escrow.address, reentry))
    es.send(es.operator, es.escrow.functions.refund(eid, 600 * USDC))

    assert bad.functions.hook_calls().call() == 1
    assert bad.functions.hook_successes().call() == 0  # the reentrant call reverted
    assert es.balance(es.buyer, bad) == 600 * USDC
    assert es.balance(es.escrow.address, bad) == 400 * USDC
    assert es.state(eid)[4:] == (400 * USDC, 0, 600 * USDC, EscrowState.FUNDED)

    # the same call outside a payout is allowed: only the reentrancy was refused
    es.send(es.deployer, bad.functions.execute(es.escrow.address, reentry, 0))
    assert es.balance(es.buyer, bad) == amount
    assert es.balance(es.escrow.address, bad) == 0
    assert es.state(eid)[4:] == (0, 0, amount, EscrowState.CLOSED)


def test_reentrant_buyer_cannot_release_during_a_native_refund(es: EscrowSetup) -> None:
    """The buyer is a contract whose receive hook tries to release the rest to the seller."""
    bad = es.deploy_test_contract("ReentrantToken")
    eid, amount = new_escrow_id(), 5 * ETH
    deposit = es.escrow.functions.deposit(eid, es.seller, deploy.NATIVE_TOKEN, amount)
    es.send(
        es.deployer,
        bad.functions.execute(es.escrow.address, deposit._encode_transaction_data(), amount),
        value=amount,
    )
    assert es.state(eid)[0] == bad.address
    seller_before = es.balance(es.seller)

    release = es.escrow.functions.release(eid)._encode_transaction_data()
    es.send(es.deployer, bad.functions.arm(es.escrow.address, release))
    es.send(es.seller, es.escrow.functions.refund(eid, 2 * ETH))

    assert bad.functions.hook_calls().call() == 1
    assert bad.functions.hook_successes().call() == 0
    assert es.balance(bad.address) == 2 * ETH
    assert es.balance(es.escrow.address) == 3 * ETH
    assert es.state(eid)[4:] == (3 * ETH, 0, 2 * ETH, EscrowState.FUNDED)
    seller_after_refund = es.balance(es.seller)
    assert seller_after_refund < seller_before  # only gas: nothing was released

    es.send(es.deployer, bad.functions.execute(es.escrow.address, release, 0))
    assert es.balance(es.seller) == seller_after_refund + 3 * ETH
    assert es.balance(es.escrow.address) == 0


def test_token_returning_no_bool_works(es: EscrowSetup) -> None:
    odd = es.deploy_test_contract("NoBoolToken")
    eid, amount = new_escrow_id(), 50 * USDC
    es.deposit_token(eid, amount, token=odd)
    assert es.balance(es.escrow.address, odd) == amount
    es.send(es.seller, es.escrow.functions.refund(eid, 20 * USDC))
    es.send(es.buyer, es.escrow.functions.release(eid))
    assert es.balance(es.buyer, odd) == 20 * USDC
    assert es.balance(es.seller, odd) == 30 * USDC
    assert es.balance(es.escrow.address, odd) == 0


def test_token_returning_false_is_refused(es: EscrowSetup) -> None:
    odd = es.deploy_test_contract("FalseToken")
    eid = new_escrow_id()
    es.send(es.deployer, odd.functions.set_fail_transfers(True))
    with reverts("Escrow: transferFrom failed"):
        es.deposit_token(eid, USDC, token=odd)

    es.send(es.deployer, odd.functions.set_fail_transfers(False))
    es.deposit_token(eid, USDC, token=odd)
    es.send(es.deployer, odd.functions.set_fail_transfers(True))
    with reverts("Escrow: transfer failed"):
        es.send(es.buyer, es.escrow.functions.release(eid))
    assert es.balance(es.escrow.address, odd) == USDC
    assert es.state(eid)[7] == EscrowState.FUNDED  # the failed release changed nothing


def test_fee_on_transfer_token_is_refused(es: EscrowSetup) -> None:
    odd = es.deploy_test_contract("FalseToken")
    es.send(es.deployer, odd.functions.set_fee_bps(100))
    with reverts("Escrow: amount not received"):
        es.deposit_token(new_escrow_id(), 100 * USDC, token=odd)


def test_the_reentrancy_lock_is_what_stops_the_reentry(es: EscrowSetup) -> None:
    """Compiled without @nonreentrant, the reentrant refund above goes through.

    This shows the test's hook really reaches the Escrow, so its failure there is the
    lock's doing and not an accident of the test contract.
    """
    import vyper

    source = ESCROW_SOURCE.read_text(encoding="utf-8").replace("@nonreentrant\n", "")
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    factory = es.w3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
    receipt = es.send(es.deployer, factory.constructor(es.operator, es.arbiter))
    unlocked = dataclasses.replace(
        es, escrow=es.w3.eth.contract(address=receipt["contractAddress"], abi=out["abi"])
    )

    bad = es.deploy_test_contract("ReentrantToken")
    eid = new_escrow_id()
    unlocked.deposit_token(eid, 1_000 * USDC, token=bad, seller=bad.address)
    reentry = unlocked.escrow.functions.refund(eid, 400 * USDC)._encode_transaction_data()
    es.send(es.deployer, bad.functions.arm(unlocked.escrow.address, reentry))
    es.send(es.operator, unlocked.escrow.functions.refund(eid, 600 * USDC))

    assert bad.functions.hook_successes().call() == 1
    assert es.balance(es.buyer, bad) == 1_000 * USDC
