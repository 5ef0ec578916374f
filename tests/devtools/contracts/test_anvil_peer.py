"""The anvil peer's controls behave as the chain monitor's tests will rely on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3.exceptions import TransactionNotFound

from tests.peers.anvil import AnvilNode

pytestmark = pytest.mark.integration


@pytest.fixture
def node(anvil: AnvilNode) -> Iterator[AnvilNode]:
    snapshot = anvil.snapshot()
    try:
        yield anvil
    finally:
        anvil.set_automine(True)
        anvil.revert(snapshot)


def _transfer(node: AnvilNode, value: int = 1) -> bytes:
    """Send a transfer; with automine on, return once it is mined (anvil answers before)."""
    tx = bytes(
        node.w3.eth.send_transaction(
            {"from": node.accounts[7], "to": node.accounts[8], "value": value}
        )
    )
    if node.rpc("anvil_getAutomine"):
        node.w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    return tx


def test_started_on_loopback_with_funded_accounts(node: AnvilNode) -> None:
    assert node.url.startswith("http://127.0.0.1:")
    assert node.w3.eth.chain_id == node.chain_id == 31337
    assert len(node.accounts) == 10
    assert node.w3.eth.get_balance(node.accounts[9]) > 0
    assert node.local_account(0).address == node.accounts[0]


def test_mine(node: AnvilNode) -> None:
    start = node.w3.eth.block_number
    node.mine(5)
    assert node.w3.eth.block_number == start + 5


def test_snapshot_and_revert(node: AnvilNode) -> None:
    start = node.w3.eth.block_number
    balance = node.w3.eth.get_balance(node.accounts[8])
    snap = node.snapshot()
    _transfer(node, 10)
    assert node.w3.eth.get_balance(node.accounts[8]) == balance + 10
    assert node.revert(snap) is True
    assert node.w3.eth.block_number == start
    assert node.w3.eth.get_balance(node.accounts[8]) == balance
    assert node.revert(snap) is False  # a snapshot is used up by reverting to it


def test_automine_off_until_mined(node: AnvilNode) -> None:
    node.set_automine(False)
    tx = _transfer(node)
    with pytest.raises(TransactionNotFound):
        node.w3.eth.get_transaction_receipt(tx)
    node.mine(1)
    assert node.w3.eth.get_transaction_receipt(tx)["status"] == 1


def test_reorg_drops_the_replaced_blocks_transactions(node: AnvilNode) -> None:
    tx = _transfer(node)
    mined = node.w3.eth.get_transaction_receipt(tx)
    node.mine(2)
    head = node.w3.eth.block_number
    old_hash = node.w3.eth.get_block(mined["blockNumber"])["hash"]

    node.reorg(3)  # replaces the block with the transfer and the two after it

    assert node.w3.eth.block_number == head  # same height, new blocks
    assert node.w3.eth.get_block(mined["blockNumber"])["hash"] != old_hash
    with pytest.raises(TransactionNotFound):  # gone: not back in the pool either
        node.w3.eth.get_transaction_receipt(tx)
    with pytest.raises(TransactionNotFound):
        node.w3.eth.get_transaction(tx)


def test_reorg_can_move_a_signed_transaction_to_another_block(node: AnvilNode) -> None:
    account = node.local_account(6)
    w3 = node.w3
    signed = account.sign_transaction(
        {
            "to": node.accounts[8],
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 10 * w3.eth.gas_price,
            "maxPriorityFeePerGas": 1,
            "nonce": w3.eth.get_transaction_count(account.address),
            "chainId": node.chain_id,
        }
    )
    tx = bytes(w3.eth.send_raw_transaction(signed.raw_transaction))
    first = w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    node.mine(2)

    node.reorg(3, txs=[(signed.raw_transaction, 2)])  # same transaction, two blocks later

    again = w3.eth.get_transaction_receipt(tx)
    assert bytes(again["transactionHash"]) == tx
    assert again["blockNumber"] == first["blockNumber"] + 2
    assert again["blockHash"] != first["blockHash"]


def test_reorg_rejects_an_index_outside_the_depth(node: AnvilNode) -> None:
    with pytest.raises(ValueError):
        node.reorg(1, txs=[({"from": node.accounts[7], "to": node.accounts[8]}, 1)])
