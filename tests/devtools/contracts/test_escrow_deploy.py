"""The deploy helpers, with unlocked accounts and with a locally signing key."""

from __future__ import annotations

import uuid

import pytest
from web3 import Web3

from devtools.contracts import deploy
from payments.providers.escrow.artifacts import EscrowState, escrow_artifact
from tests.peers.anvil import AnvilNode

pytestmark = pytest.mark.integration


def test_deploy_escrow_with_an_unlocked_account(anvil: AnvilNode) -> None:
    w3 = anvil.w3
    address = deploy.deploy_escrow(w3, anvil.accounts[0], anvil.accounts[1], anvil.accounts[2])
    escrow = deploy.escrow_contract(w3, address)
    assert escrow.functions.operator().call() == anvil.accounts[1]
    assert escrow.functions.arbiter().call() == anvil.accounts[2]
    code = bytes(w3.eth.get_code(address))
    assert code.startswith(bytes.fromhex(escrow_artifact().bytecode_runtime[2:]))


def test_local_key_deploys_and_deposits(anvil: AnvilNode) -> None:
    w3 = anvil.w3
    key = anvil.local_account(9)  # signed here, sent raw
    escrow_address = deploy.deploy_escrow(w3, key, anvil.accounts[1], anvil.accounts[2])
    token_address = deploy.deploy_test_token(w3, key)
    token = deploy.token_contract(w3, token_address)
    escrow = deploy.escrow_contract(w3, escrow_address)
    assert token.functions.decimals().call() == 6
    assert token.functions.owner().call() == Web3.to_checksum_address(key.address)

    deploy.transact(w3, key, token.functions.mint(key.address, 5_000_000))
    deploy.transact(w3, key, token.functions.approve(escrow_address, 5_000_000))
    eid = deploy.escrow_id_for(uuid.uuid4())
    deploy.transact(
        w3, key, escrow.functions.deposit(eid, anvil.accounts[4], token_address, 5_000_000)
    )
    assert escrow.functions.get_escrow(eid).call()[7] == EscrowState.FUNDED
    assert token.functions.balanceOf(escrow_address).call() == 5_000_000


def test_mint_is_owner_only(anvil: AnvilNode) -> None:
    from web3.exceptions import ContractLogicError

    w3 = anvil.w3
    token = deploy.token_contract(w3, deploy.deploy_test_token(w3, anvil.accounts[0]))
    with pytest.raises(ContractLogicError, match="TestToken: not owner"):
        deploy.transact(w3, anvil.accounts[1], token.functions.mint(anvil.accounts[1], 1))


def test_a_mined_revert_raises_transaction_failed(anvil: AnvilNode) -> None:
    w3 = anvil.w3
    escrow = deploy.escrow_contract(
        w3, deploy.deploy_escrow(w3, anvil.accounts[0], anvil.accounts[1], anvil.accounts[2])
    )
    # skip gas estimation (which would refuse it) so the revert happens on chain
    tx = escrow.functions.release(b"\x01" * 32).build_transaction(
        {"from": anvil.accounts[3], "gas": 100_000}
    )
    with pytest.raises(deploy.TransactionFailed) as info:
        deploy.send_transaction(w3, anvil.accounts[3], tx)
    assert info.value.receipt["status"] == 0
