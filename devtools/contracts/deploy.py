"""Deploy and drive the escrow contracts with plain web3.py 7 (no Django).

A sender is either an address unlocked on the node (anvil's accounts: the node signs,
``eth_sendTransaction``) or an ``eth_account`` LocalAccount (signed here, sent raw).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import TxParams, TxReceipt

from payments.providers.chain.client import ESCROW_ID_DOMAIN, escrow_id_for  # noqa: F401
from payments.providers.escrow.artifacts import (
    ContractArtifact,
    escrow_artifact,
    load_artifact,
    payments_artifact,
    token_artifact,
)

Sender: TypeAlias = LocalAccount | ChecksumAddress | str


DEFAULT_TIMEOUT = 120.0

# the `token` argument of Escrow.deposit for the chain's native coin
NATIVE_TOKEN: ChecksumAddress = ChecksumAddress("0x0000000000000000000000000000000000000000")


class TransactionFailed(RuntimeError):
    """The transaction was mined but reverted (receipt status 0)."""

    def __init__(self, receipt: TxReceipt) -> None:
        super().__init__(f"transaction {receipt['transactionHash'].hex()} reverted")
        self.receipt = receipt


def sender_address(sender: Sender) -> ChecksumAddress:
    if isinstance(sender, LocalAccount):
        return Web3.to_checksum_address(sender.address)
    return Web3.to_checksum_address(sender)


def send_transaction(
    w3: Web3, sender: Sender, tx: TxParams, *, timeout: float = DEFAULT_TIMEOUT
) -> TxReceipt:
    """Send ``tx`` from ``sender``, wait for its receipt; raise TransactionFailed on revert.

    ``tx`` should already carry gas and fee fields (``build_transaction`` fills them).
    """
    tx = dict(tx)  # type: ignore[assignment]
    tx["from"] = sender_address(sender)
    if isinstance(sender, LocalAccount):
        tx.setdefault("nonce", w3.eth.get_transaction_count(sender.address, "pending"))
        tx.setdefault("chainId", w3.eth.chain_id)
        signed = sender.sign_transaction(tx)  # type: ignore[arg-type]
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    else:
        tx_hash = w3.eth.send_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.05)
    if receipt["status"] != 1:
        raise TransactionFailed(receipt)
    return receipt


def transact(
    w3: Web3,
    sender: Sender,
    call: ContractFunction | ContractConstructor,
    *,
    value: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
) -> TxReceipt:
    """Build (estimating gas, which raises ContractLogicError on a revert) and send ``call``."""
    tx = call.build_transaction({"from": sender_address(sender), "value": value})
    return send_transaction(w3, sender, tx, timeout=timeout)


def deploy_contract(
    w3: Web3, deployer: Sender, artifact: ContractArtifact, *args: Any
) -> ChecksumAddress:
    factory = w3.eth.contract(abi=artifact.abi_list(), bytecode=artifact.bytecode)
    receipt = transact(w3, deployer, factory.constructor(*args))
    address = receipt["contractAddress"]
    if address is None:
        raise RuntimeError(f"deploying {artifact.name}: no contract address in the receipt")
    return Web3.to_checksum_address(address)


def deploy_escrow(
    w3: Web3, deployer: Sender, operator: ChecksumAddress | str, arbiter: ChecksumAddress | str
) -> ChecksumAddress:
    """Deploy Escrow(operator, arbiter); returns its address."""
    return deploy_contract(
        w3,
        deployer,
        escrow_artifact(),
        Web3.to_checksum_address(operator),
        Web3.to_checksum_address(arbiter),
    )


def deploy_test_token(
    w3: Web3, deployer: Sender, name: str = "Test USD Coin", symbol: str = "tUSDC"
) -> ChecksumAddress:
    """Deploy a TestToken (6 decimals; the deployer may mint); returns its address."""
    return deploy_contract(w3, deployer, token_artifact(), name, symbol)


def escrow_contract(w3: Web3, address: ChecksumAddress | str) -> Contract:
    return w3.eth.contract(
        address=Web3.to_checksum_address(address), abi=escrow_artifact().abi_list()
    )


def token_contract(w3: Web3, address: ChecksumAddress | str) -> Contract:
    """A TestToken (also fine for reading any ERC-20: balanceOf, decimals, Transfer)."""
    return w3.eth.contract(
        address=Web3.to_checksum_address(address), abi=token_artifact().abi_list()
    )


def deploy_payments(
    w3: Web3, deployer: Sender, owner: ChecksumAddress | str, signer: ChecksumAddress | str
) -> ChecksumAddress:
    """Deploy Payments(owner, signer); returns its address."""
    return deploy_contract(
        w3,
        deployer,
        payments_artifact(),
        Web3.to_checksum_address(owner),
        Web3.to_checksum_address(signer),
    )


def payments_contract(w3: Web3, address: ChecksumAddress | str) -> Contract:
    return w3.eth.contract(
        address=Web3.to_checksum_address(address), abi=payments_artifact().abi_list()
    )


def deploy_deposit_factory(
    w3: Web3,
    deployer: Sender,
    owner: ChecksumAddress | str,
    operator: ChecksumAddress | str,
    receiver: ChecksumAddress | str,
) -> tuple[ChecksumAddress, ChecksumAddress]:
    """Deploy DepositFactory (it deploys its own DepositForwarder implementation); returns
    (factory, implementation): deposit addresses are derived from both."""
    factory = deploy_contract(
        w3,
        deployer,
        load_artifact("DepositFactory"),
        Web3.to_checksum_address(owner),
        Web3.to_checksum_address(operator),
        Web3.to_checksum_address(receiver),
        bytes.fromhex(load_artifact("DepositForwarder").bytecode.removeprefix("0x")),
    )
    contract = w3.eth.contract(address=factory, abi=load_artifact("DepositFactory").abi_list())
    return factory, Web3.to_checksum_address(contract.functions.implementation().call())


def deploy_escrow_v2(
    w3: Web3,
    deployer: Sender,
    *,
    owner: ChecksumAddress | str,
    operator: ChecksumAddress | str,
    arbiter: ChecksumAddress | str,
    backup_arbiter: ChecksumAddress | str,
    rotation_delay: int = 24 * 3600,
    dispute_window: int = 7 * 24 * 3600,
) -> ChecksumAddress:
    """Deploy EscrowV2 (owner, operator, arbiter and backup arbiter all different; the owner
    may rotate the others after ``rotation_delay``); returns its address."""
    return deploy_contract(
        w3,
        deployer,
        load_artifact("EscrowV2"),
        *(Web3.to_checksum_address(a) for a in (owner, operator, arbiter, backup_arbiter)),
        rotation_delay,
        dispute_window,
    )
