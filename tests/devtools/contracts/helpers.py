"""Shared helpers for the escrow contract tests (plain web3.py, no Django)."""

from __future__ import annotations

import functools
import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from devtools.contracts import deploy
from payments.providers.escrow.artifacts import ContractArtifact
from tests.peers.anvil import AnvilNode

TEST_CONTRACTS_DIR = Path(__file__).resolve().parent


@functools.cache
def compiled_test_contract(name: str) -> ContractArtifact:
    """Compile tests/devtools/contracts/<name>.vy (test-only contracts have no JSON artifact)."""
    from devtools.contracts.build import VYPER_VERSION, compile_source

    path = TEST_CONTRACTS_DIR / f"{name}.vy"
    out = compile_source(path)
    return ContractArtifact(
        name=name,
        compiler_version=VYPER_VERSION,
        source_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        abi=tuple(out["abi"]),
        bytecode=out["bytecode"],
        bytecode_runtime=out["bytecode_runtime"],
    )


def gas_cost(receipt: TxReceipt) -> int:
    """Wei the sender paid for gas."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def new_escrow_id() -> bytes:
    return deploy.escrow_id_for(uuid.uuid4())


# --- EIP-712 intents (Payments, EscrowV2) ---------------------------------------------------
EIP712_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
#: the order of the secp256k1 group: a signature's s above half of it is the malleable twin
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def eip712_message(
    domain: tuple[str, str, int, str],
    primary: str,
    fields: list[dict[str, str]],
    values: tuple[Any, ...],
) -> dict[str, Any]:
    """The full EIP-712 message of one intent, as the application builds it: ``domain`` is
    (name, version, chain id, verifying contract); ``values`` in the order of ``fields``."""
    name, version, chain_id, contract = domain
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, primary: fields},
        "primaryType": primary,
        "domain": {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        "message": dict(zip((f["name"] for f in fields), values, strict=True)),
    }


@dataclass
class EscrowSetup:
    """Escrow and TestToken deployed on anvil, and who plays which part."""

    node: AnvilNode
    w3: Web3
    escrow: Contract
    token: Contract
    deployer: str
    operator: str
    arbiter: str
    buyer: str
    seller: str
    stranger: str

    def deploy_test_contract(self, name: str, *args: object) -> Contract:
        artifact = compiled_test_contract(name)
        address = deploy.deploy_contract(self.w3, self.deployer, artifact, *args)
        return self.w3.eth.contract(address=address, abi=artifact.abi_list())

    def balance(self, who: str, token: Contract | None = None) -> int:
        """Native balance (token None) or ``token`` balance of ``who``, in base units."""
        if token is None:
            return int(self.w3.eth.get_balance(Web3.to_checksum_address(who)))
        return int(token.functions.balanceOf(Web3.to_checksum_address(who)).call())

    def send(self, sender: str, call: object, value: int = 0) -> TxReceipt:
        return deploy.transact(self.w3, sender, call, value=value)  # type: ignore[arg-type]

    def fund_token(self, who: str, amount: int, token: Contract | None = None) -> None:
        """Mint ``amount`` of the TestToken (or a test token with open mint) to ``who``."""
        token = token or self.token
        self.send(self.deployer, token.functions.mint(who, amount))

    def deposit_token(
        self, escrow_id: bytes, amount: int, token: Contract | None = None, seller: str = ""
    ) -> TxReceipt:
        """Mint, approve and deposit ``amount`` of a token from the buyer."""
        token = token or self.token
        self.fund_token(self.buyer, amount, token)
        self.send(self.buyer, token.functions.approve(self.escrow.address, amount))
        return self.send(
            self.buyer,
            self.escrow.functions.deposit(escrow_id, seller or self.seller, token.address, amount),
        )

    def deposit_native(self, escrow_id: bytes, amount: int, seller: str = "") -> TxReceipt:
        return self.send(
            self.buyer,
            self.escrow.functions.deposit(
                escrow_id, seller or self.seller, deploy.NATIVE_TOKEN, amount
            ),
            value=amount,
        )

    def state(self, escrow_id: bytes) -> tuple:
        """(buyer, seller, token, amount, remaining, released, refunded, state)."""
        return tuple(self.escrow.functions.get_escrow(escrow_id).call())
