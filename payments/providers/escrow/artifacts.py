"""The built escrow contracts: ABI and bytecode read from the committed JSON artifacts.

Plain Python (no Django, no compiler): the chain provider and the monitor load these too.
Rebuild the JSON with ``python -m devtools.contracts.build``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

BUILD_DIR = Path(__file__).resolve().parent / "build"

ESCROW = "Escrow"
TEST_TOKEN = "TestToken"


class EscrowState(IntEnum):
    """The Escrow contract's ``state`` field (STATE_* constants in Escrow.vy)."""

    NONE = 0
    FUNDED = 1
    DISPUTED = 2
    CLOSED = 3


@dataclass(frozen=True)
class ContractArtifact:
    name: str
    compiler_version: str
    source_sha256: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str  # 0x-prefixed creation code
    bytecode_runtime: str  # 0x-prefixed runtime code, before immutables are appended

    def abi_list(self) -> list[dict[str, Any]]:
        """The ABI as a fresh list, for web3 (which wants a list)."""
        return [dict(item) for item in self.abi]


@functools.cache
def load_artifact(name: str) -> ContractArtifact:
    """Read build/<name>.json once per process."""
    path = BUILD_DIR / f"{name}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return ContractArtifact(
        name=data["contractName"],
        compiler_version=data["compilerVersion"],
        source_sha256=data["sourceSha256"],
        abi=tuple(data["abi"]),
        bytecode=data["bytecode"],
        bytecode_runtime=data["bytecodeRuntime"],
    )


def escrow_artifact() -> ContractArtifact:
    return load_artifact(ESCROW)


def token_artifact() -> ContractArtifact:
    """The TestToken (6-decimal ERC-20 stand-in for USDC on development chains)."""
    return load_artifact(TEST_TOKEN)


def escrow_abi() -> list[dict[str, Any]]:
    return escrow_artifact().abi_list()


PAYMENTS = "Payments"


def payments_artifact() -> ContractArtifact:
    """The Payments contract (direct payments against signed EIP-712 intents)."""
    return load_artifact(PAYMENTS)


def payments_abi() -> list[dict[str, Any]]:
    return payments_artifact().abi_list()
