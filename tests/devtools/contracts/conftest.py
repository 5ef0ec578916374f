"""Fixtures for the escrow contract tests: the anvil peer and the deployed contracts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[3]
if str(_REPO_ROOT) not in sys.path:  # when pytest is run without the root on sys.path
    sys.path.insert(0, str(_REPO_ROOT))

from devtools.contracts import deploy  # noqa: E402
from tests.devtools.contracts.helpers import EscrowSetup  # noqa: E402
from tests.peers.anvil import AnvilNode, anvil  # noqa: E402, F401  (the session fixture)


def pytest_configure(config: pytest.Config) -> None:
    # the project's pytest configuration declares it too; repeating a marker is harmless
    config.addinivalue_line("markers", "integration: needs a local peer (here: anvil)")


@pytest.fixture(scope="module")
def escrow_setup(anvil: AnvilNode) -> EscrowSetup:  # noqa: F811
    """Escrow (operator = account 1, arbiter = account 2) and TestToken, once per module."""
    w3 = anvil.w3
    deployer, operator, arbiter, buyer, seller, stranger = anvil.accounts[:6]
    escrow_address = deploy.deploy_escrow(w3, deployer, operator, arbiter)
    token_address = deploy.deploy_test_token(w3, deployer)
    return EscrowSetup(
        node=anvil,
        w3=w3,
        escrow=deploy.escrow_contract(w3, escrow_address),
        token=deploy.token_contract(w3, token_address),
        deployer=deployer,
        operator=operator,
        arbiter=arbiter,
        buyer=buyer,
        seller=seller,
        stranger=stranger,
    )


@pytest.fixture
def es(escrow_setup: EscrowSetup) -> Iterator[EscrowSetup]:
    """The deployed contracts, with the chain put back as it was after each test."""
    snapshot = escrow_setup.node.snapshot()
    try:
        yield escrow_setup
    finally:
        escrow_setup.node.revert(snapshot)
