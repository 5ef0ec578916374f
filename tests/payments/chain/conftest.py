"""Fixtures for the chain tests: the contracts deployed once on the session's anvil, settings
switching crypto/escrow to the real providers, and the chain put back after each test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[3]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from devtools.contracts import deploy  # noqa: E402
from orders.audit import Actor  # noqa: E402
from payments.chain.monitor import PassReport, chain_poll  # noqa: E402
from payments.models import PaymentTransaction  # noqa: E402
from payments.providers.chain.registry import get_chain  # noqa: E402
from payments.providers.escrow.artifacts import load_artifact  # noqa: E402
from payments.providers.registry import get_provider  # noqa: E402
from payments.services.payments import (  # noqa: E402
    payment_claim_transaction,
    payment_create,
    payment_start,
)
from tests.factories import OrderFactory  # noqa: E402
from tests.peers.anvil import AnvilNode, anvil  # noqa: E402, F401

CONFIRMATIONS = 3


@dataclass
class ChainEnv:
    node: AnvilNode
    escrow: str
    escrow_v2: str
    token: str
    payments: str  # the Payments contract (signer: the operator)
    deposit_factory: str  # sweeps to ``receiving``; operator: the operator
    deposit_implementation: str
    operator: str  # account 1
    receiving: str  # account 9
    payer: str  # account 3
    seller_wallet: str  # account 4
    operator_key: str
    payout_key: str  # account 8

    @property
    def w3(self):  # type: ignore[no-untyped-def]
        return self.node.w3

    @property
    def chain_id(self) -> int:
        return self.node.chain_id

    def poll(self) -> PassReport:
        report = chain_poll(self.chain_id, ignore_backoff=True)
        assert not report.error and not report.skipped, report
        return report

    def send(self, sender: str, to: str, value: int = 0, data: str = "0x", **extra: Any) -> str:
        cs = self.w3.to_checksum_address
        tx = {"from": cs(sender), "to": cs(to), "value": value, "data": data, **extra}
        return self.mined("0x" + bytes(self.w3.eth.send_transaction(tx)).hex())

    def send_raw(self, raw: bytes) -> str:
        """Send a signed transaction; its hash, once mined where automine is on."""
        return self.mined("0x" + bytes(self.w3.eth.send_raw_transaction(raw)).hex())

    def signed(
        self, to: str, value: int = 0, data: str = "0x", gas: int = 21_000, account: int = 3
    ) -> bytes:
        """A transaction signed locally by anvil account ``account`` (the payer by default):
        kept, it can be sent again after a reorg dropped it."""
        sender = self.node.local_account(account)
        return sender.sign_transaction(
            {
                "to": self.w3.to_checksum_address(to),
                "value": value,
                "data": data,
                "gas": gas,
                "maxFeePerGas": 100 * 10**9,
                "maxPriorityFeePerGas": 10**9,
                "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"),
                "chainId": self.chain_id,
                "type": 2,
            }
        ).raw_transaction

    def mined(self, tx_hash: str) -> str:
        if self.node.rpc("anvil_getAutomine"):
            # anvil answers before its automine has mined the block: wait, or a poll right
            # after may not see the transaction yet.
            self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        return tx_hash

    def send_requests(self, payment: PaymentTransaction, sender: str | None = None) -> list[str]:
        requests_ = payment.provider_data["instructions"]["transaction_requests"]
        return [
            self.send(sender or self.payer, r["to"], int(r["value"]), r["data"]) for r in requests_
        ]

    def mint(self, who: str, units: int) -> None:
        token = deploy.token_contract(self.w3, self.token)
        deploy.transact(self.w3, self.node.accounts[0], token.functions.mint(who, units))

    def token_balance(self, who: str) -> int:
        token = deploy.token_contract(self.w3, self.token)
        return int(token.functions.balanceOf(self.w3.to_checksum_address(who)).call())


@pytest.fixture(scope="session")
def chain_contracts(anvil: AnvilNode) -> dict[str, str]:  # noqa: F811
    w3 = anvil.w3
    operator = anvil.accounts[1]
    return {
        "escrow": deploy.deploy_escrow(w3, anvil.accounts[0], operator, operator),
        "payments": deploy.deploy_payments(w3, anvil.accounts[0], operator, operator),
        "token": deploy.deploy_test_token(w3, anvil.accounts[0]),
        # owner 0, operator 1 (the operator key), arbiter 5 (the arbiter key), backup 6
        "escrow_v2": deploy.deploy_escrow_v2(
            w3,
            anvil.accounts[0],
            owner=anvil.accounts[0],
            operator=operator,
            arbiter=anvil.accounts[5],
            backup_arbiter=anvil.accounts[6],
        ),
        **dict(
            zip(
                ("deposit_factory", "deposit_implementation"),
                deploy.deploy_deposit_factory(
                    w3, anvil.accounts[0], operator, operator, anvil.accounts[9]
                ),
                strict=True,
            )
        ),
    }


@pytest.fixture
def chain_env(anvil: AnvilNode, chain_contracts, settings, db) -> Iterator[ChainEnv]:  # noqa: F811
    from payments.providers.chain import client as rpc

    env = ChainEnv(
        node=anvil,
        escrow=chain_contracts["escrow"],
        escrow_v2=chain_contracts["escrow_v2"],
        token=chain_contracts["token"],
        payments=chain_contracts["payments"],
        deposit_factory=chain_contracts["deposit_factory"],
        deposit_implementation=chain_contracts["deposit_implementation"],
        operator=anvil.accounts[1],
        receiving=anvil.accounts[9],
        payer=anvil.accounts[3],
        seller_wallet=anvil.accounts[4],
        operator_key="0x" + bytes(anvil.local_account(1).key).hex(),
        payout_key="0x" + bytes(anvil.local_account(8).key).hex(),
    )
    assert env.payer.lower() == PAYER
    settings.PAYMENT_PROVIDERS = {"fiat": "dummy", "crypto": "chain", "escrow": "escrow"}
    settings.CHAIN_DEV_DEPLOYMENT_FILE = ""
    settings.CHAINS = [
        {
            "chain_id": anvil.chain_id,
            "rpc_url": anvil.url,
            "required_confirmations": CONFIRMATIONS,
            "tokens": [{"symbol": "USDC", "address": env.token, "decimals": 6}],
            "escrow_contract": env.escrow,
            # crypto payments the old way (a plain transfer, claimed): the migration path; the
            # ``bound_env`` fixture pays through the Payments contract
            "legacy_transfers": True,
            "receiving_address": env.receiving,
            "operator_key": env.operator_key,
            "payout_key": "",
        }
    ]
    get_provider.cache_clear()
    rpc.reset_clients()
    anvil.set_automine(True)
    snapshot = anvil.snapshot()
    try:
        yield env
    finally:
        anvil.set_automine(True)
        anvil.revert(snapshot)
        get_provider.cache_clear()


@pytest.fixture
def bound_env(chain_env, settings) -> ChainEnv:  # type: ignore[no-untyped-def]
    """``chain_env`` with the Payments contract configured: new crypto payments are bound on
    chain (a signed intent; credited only by the contract's event naming them)."""
    settings.CHAINS = [
        {**settings.CHAINS[0], "payment_contract": chain_env.payments, "legacy_transfers": False}
    ]
    get_provider.cache_clear()
    return chain_env


@pytest.fixture
def escrow_v2_env(chain_env, settings) -> ChainEnv:  # type: ignore[no-untyped-def]
    """``chain_env`` with new escrows on EscrowV2 (the test token allow-listed; the arbiter is
    anvil account 5, whose key the platform holds)."""
    v2 = chain_env.w3.eth.contract(
        address=chain_env.w3.to_checksum_address(chain_env.escrow_v2),
        abi=load_artifact("EscrowV2").abi_list(),
    )
    deploy.transact(
        chain_env.w3,
        chain_env.node.accounts[0],
        v2.functions.set_token_allowed(chain_env.token, True),
    )
    settings.CHAINS = [
        {
            **settings.CHAINS[0],
            "escrow_contract": chain_env.escrow_v2,
            "escrow_version": 2,
            "arbiter_key": "0x" + bytes(chain_env.node.local_account(5).key).hex(),
        }
    ]
    get_provider.cache_clear()
    return chain_env


@pytest.fixture
def deposit_env(bound_env, settings) -> ChainEnv:  # type: ignore[no-untyped-def]
    """``bound_env`` with deposit addresses: each crypto payment also has a CREATE2 address of
    its own; the payout wallet (account 8) sends excess back."""
    settings.CHAINS = [
        {
            **settings.CHAINS[0],
            "deposit_factory": bound_env.deposit_factory,
            "deposit_implementation": bound_env.deposit_implementation,
            "payout_key": bound_env.payout_key,
        }
    ]
    get_provider.cache_clear()
    return bound_env


def claim(payment, tx_hash: str, chain_id: int | None = None):  # type: ignore[no-untyped-def]
    """The buyer reports ``tx_hash`` for ``payment`` (the monitor-blockchain service)."""
    return payment_claim_transaction(
        payment_id=payment.id,
        transaction_hash=tx_hash,
        chain_id=chain_id,
        actor=Actor.for_user(payment.order.buyer),
    )


def reload(payment):  # type: ignore[no-untyped-def]
    return PaymentTransaction.objects.get(pk=payment.id)


def chain_order(buyer, seller, currency: str = "ETH", amount: str = "0.5"):  # type: ignore[no-untyped-def]
    return OrderFactory(buyer=buyer, seller=seller, currency=currency, amount=Decimal(amount))


#: anvil's account 3 (the well-known test mnemonic): ``ChainEnv.payer``, the wallet crypto
#: payments in these tests name as the one they are paid from
PAYER = "0x90f79bf6eb2c4f870365e785982e1f101e93b906"


def start_payment(order, method: str, details: dict | None = None) -> PaymentTransaction:  # type: ignore[no-untyped-def]
    actor = Actor.for_user(order.buyer)
    if method == "crypto" and not get_chain(None).payment_contract:
        details = {"payer_address": PAYER, **(details or {})}
    payment = payment_create(order_id=order.id, method=method, actor=actor, details=details)
    payment_start(payment_id=payment.id, actor=actor)
    return PaymentTransaction.objects.get(pk=payment.id)
