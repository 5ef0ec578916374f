"""EscrowV2 on a real anvil: the fixes for the v1 audit findings, and the refusals.

Findings, and where they are covered:

1. squatted escrow ids: deposits need an operator-signed EIP-712 intent naming the payer;
2. no way out for the buyer: reclaim after the authorization expiry, and after the dispute
   deadline (the backup arbiter may also settle then);
3. one permanent hot key: operator, arbiter and backup arbiter are distinct and rotated in
   two steps with a delay; ownership moves in two steps.

Plus pause, pull payments as the fallback of a failed push, the token allow-list, exact
amounts and recovering stray funds. Every refusal checks that nothing changed.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from devtools.contracts import deploy
from payments.providers.escrow.artifacts import EscrowState, load_artifact
from tests.devtools.contracts.helpers import (
    SECP256K1_N,
    compiled_test_contract,
    eip712_message,
    gas_cost,
)
from tests.peers.anvil import AnvilNode

pytestmark = pytest.mark.integration

ETH = 10**18
USDC = 10**6  # TestToken has 6 decimals
NATIVE = deploy.NATIVE_TOKEN
ZERO = deploy.NATIVE_TOKEN
HOUR = 3600
DAY = 24 * HOUR
ROTATION_DELAY = DAY
DISPUTE_WINDOW = 3 * DAY
AUTHORIZATION = 7 * DAY  # how long the default intent lets the operator release

ROLE_OWNER, ROLE_OPERATOR, ROLE_ARBITER, ROLE_BACKUP_ARBITER = 0, 1, 2, 3
MODE_ACCEPT, MODE_REJECT, MODE_BURN = 0, 1, 2  # RejectingReceiver

ESCROW_INTENT_TYPE = (
    "EscrowIntent(bytes32 escrowId,address payer,address seller,address token,uint256 amount,"
    "uint256 authorizationExpiry,uint256 deadline)"
)
INTENT_FIELDS = [
    {"name": "escrowId", "type": "bytes32"},
    {"name": "payer", "type": "address"},
    {"name": "seller", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "authorizationExpiry", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def reverts(reason: str) -> pytest.RaisesContext[ContractLogicError]:
    return pytest.raises(ContractLogicError, match=re.escape(reason))


def new_escrow_id() -> bytes:
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class Intent:
    """An EscrowIntent, its fields in the order `intent_digest` takes them."""

    escrow_id: bytes
    payer: str
    seller: str
    token: str
    amount: int
    authorization_expiry: int
    deadline: int

    def digest_args(self) -> tuple[Any, ...]:
        return dataclasses.astuple(self)

    def deposit_args(self) -> tuple[Any, ...]:
        """`deposit`'s arguments before the signature: the payer is the caller."""
        return (
            self.escrow_id,
            self.seller,
            self.token,
            self.amount,
            self.authorization_expiry,
            self.deadline,
        )

    def typed_data(self, chain_id: int, verifying_contract: str) -> dict[str, Any]:
        """The full EIP-712 message, as the application builds it."""
        return eip712_message(
            ("OrderpayEscrow", "2", chain_id, verifying_contract),
            "EscrowIntent",
            INTENT_FIELDS,
            self.digest_args(),
        )


@dataclass
class V2Setup:
    """EscrowV2 and TestToken (allow-listed) on anvil, and who plays which part."""

    node: AnvilNode
    w3: Web3
    escrow: Contract
    token: Contract
    deployer: str
    owner: str
    operator: LocalAccount
    arbiter: str
    backup: str
    buyer: str
    seller: str
    stranger: str
    spare: LocalAccount  # a key holding no role: the next operator, a forger

    @property
    def f(self) -> Any:
        return self.escrow.functions

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel(self, seconds: int) -> None:
        self.node.increase_time(seconds)
        self.node.mine()

    def send(self, sender: str, call: object, value: int = 0) -> TxReceipt:
        return deploy.transact(self.w3, sender, call, value=value)  # type: ignore[arg-type]

    def balance(self, who: str, token: Contract | None = None) -> int:
        if token is None:
            return int(self.w3.eth.get_balance(Web3.to_checksum_address(who)))
        return int(token.functions.balanceOf(Web3.to_checksum_address(who)).call())

    def intent(self, **fields: Any) -> Intent:
        """A native intent of 2 ETH from buyer to seller; override fields."""
        now = self.now()
        values: dict[str, Any] = {
            "escrow_id": new_escrow_id(),
            "payer": self.buyer,
            "seller": self.seller,
            "token": NATIVE,
            "amount": 2 * ETH,
            "authorization_expiry": now + AUTHORIZATION,
            "deadline": now + HOUR,
        }
        values.update(fields)
        return Intent(**values)

    def token_intent(self, **fields: Any) -> Intent:
        """An intent of 125.000001 TestToken; override fields."""
        values: dict[str, Any] = {"token": self.token.address, "amount": 125 * USDC + 1}
        values.update(fields)
        return self.intent(**values)

    def sign(
        self, intent: Intent, key: LocalAccount | None = None, contract: Contract | None = None
    ) -> bytes:
        """r ++ s ++ v by the operator unless ``key`` says otherwise."""
        key = key or self.operator
        contract = contract or self.escrow
        message = intent.typed_data(self.node.chain_id, contract.address)
        return bytes(key.sign_typed_data(full_message=message).signature)

    def deposit(
        self,
        intent: Intent,
        signature: bytes | None = None,
        *,
        sender: str = "",
        value: int | None = None,
        contract: Contract | None = None,
    ) -> TxReceipt:
        """Send ``deposit``; from the payer, value the amount for native coin, unless told."""
        contract = contract or self.escrow
        if signature is None:
            signature = self.sign(intent, contract=contract)
        if value is None:
            value = intent.amount if intent.token == NATIVE else 0
        call = contract.functions.deposit(*intent.deposit_args(), signature)
        return self.send(sender or intent.payer, call, value=value)

    def fund_and_approve(self, amount: int, token: Contract | None = None, who: str = "") -> None:
        token = token or self.token
        who = who or self.buyer
        self.send(self.deployer, token.functions.mint(who, amount))
        self.send(who, token.functions.approve(self.escrow.address, amount))

    def funded(self, token: Contract | None = None, **fields: Any) -> Intent:
        """Deposit a fresh intent (native by default, else ``token``) and return it."""
        if token is not None:
            intent = self.intent(token=token.address, amount=100 * USDC, **fields)
            self.fund_and_approve(intent.amount, token, intent.payer)
        else:
            intent = self.intent(**fields)
        self.deposit(intent)
        return intent

    def state(self, escrow_id: bytes) -> tuple[Any, ...]:
        """(buyer, seller, token, amount, remaining, released, refunded, state,
        authorization_expiry, dispute_deadline)."""
        return tuple(self.f.get_escrow(escrow_id).call())

    def owed(self, who: str, token: str = NATIVE) -> int:
        return int(self.f.owed(token, who).call())

    def ledger(
        self, *escrow_ids: bytes, tokens: tuple[Contract, ...] = (), who: tuple = ()
    ) -> tuple:
        """Everything a refused call must leave alone: the escrows, the contract's and the
        parties' balances (native and tokens), the totals and what is owed."""
        people = (self.escrow.address, self.buyer, self.seller, self.stranger, *who)
        token_contracts = (self.token, *tokens)
        token_addresses = (NATIVE, *(t.address for t in token_contracts))
        return (
            tuple(self.state(eid) for eid in escrow_ids),
            tuple(self.balance(p) for p in people),
            tuple(self.balance(p, t) for p in people for t in token_contracts),
            tuple(int(self.f.escrowed_total(t).call()) for t in token_addresses),
            tuple(int(self.f.owed_total(t).call()) for t in token_addresses),
            tuple(self.owed(p, t) for p in people for t in token_addresses),
            self.f.paused().call(),
        )

    def deploy_test_contract(self, name: str, *args: object) -> Contract:
        artifact = compiled_test_contract(name)
        address = deploy.deploy_contract(self.w3, self.deployer, artifact, *args)
        return self.w3.eth.contract(address=address, abi=artifact.abi_list())

    def allow(self, token: Contract) -> None:
        self.send(self.owner, self.f.set_token_allowed(token.address, True))

    def act_as(self, party: Contract, call: Any, value: int = 0) -> TxReceipt:
        """Have a RejectingReceiver (owned by the deployer) make ``call``."""
        data = call._encode_transaction_data()
        return self.send(
            self.deployer,
            party.functions.execute(self.escrow.address, data, value),
            value=value,
        )

    def events(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        event = getattr(self.escrow.events, name)()
        return [dict(e["args"]) for e in event.process_receipt(receipt, errors=DISCARD)]

    def block_time(self, receipt: TxReceipt) -> int:
        return int(self.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def deploy_v2(
    w3: Web3,
    deployer: str,
    owner: str,
    operator: str,
    arbiter: str,
    backup: str,
    rotation_delay: int = ROTATION_DELAY,
    dispute_window: int = DISPUTE_WINDOW,
) -> Contract:
    artifact = load_artifact("EscrowV2")
    address = deploy.deploy_contract(
        w3, deployer, artifact, owner, operator, arbiter, backup, rotation_delay, dispute_window
    )
    return w3.eth.contract(address=address, abi=artifact.abi_list())


@pytest.fixture(scope="module")
def v2_setup(anvil: AnvilNode) -> V2Setup:
    """EscrowV2 (owner 1, operator 2's key, arbiter 3, backup 4) and TestToken, once."""
    w3 = anvil.w3
    accounts = anvil.accounts
    deployer, owner, arbiter, backup = accounts[0], accounts[1], accounts[3], accounts[4]
    buyer, seller, stranger = accounts[5], accounts[6], accounts[7]
    operator, spare = anvil.local_account(2), anvil.local_account(8)
    assert operator.address == accounts[2] and spare.address == accounts[8]
    escrow = deploy_v2(w3, deployer, owner, operator.address, arbiter, backup)
    token = deploy.token_contract(w3, deploy.deploy_test_token(w3, deployer))
    deploy.transact(w3, owner, escrow.functions.set_token_allowed(token.address, True))
    return V2Setup(
        node=anvil,
        w3=w3,
        escrow=escrow,
        token=token,
        deployer=deployer,
        owner=owner,
        operator=operator,
        arbiter=arbiter,
        backup=backup,
        buyer=buyer,
        seller=seller,
        stranger=stranger,
        spare=spare,
    )


@pytest.fixture
def v(v2_setup: V2Setup) -> Iterator[V2Setup]:
    """The deployed contracts, with the chain (and its clock) put back after each test."""
    snapshot = v2_setup.node.snapshot()
    try:
        yield v2_setup
    finally:
        v2_setup.node.revert(snapshot)


# --- deployment, artifact and the EIP-712 digest ------------------------------------------


def test_deployed_state(v: V2Setup) -> None:
    f = v.f
    assert f.owner().call() == v.owner
    assert f.operator().call() == v.operator.address
    assert f.arbiter().call() == v.arbiter
    assert f.backup_arbiter().call() == v.backup
    assert f.pending_owner().call() == ZERO
    assert f.rotation_delay().call() == ROTATION_DELAY
    assert f.dispute_window().call() == DISPUTE_WINDOW
    assert f.paused().call() is False
    assert f.token_allowed(NATIVE).call() is True
    assert f.token_allowed(v.token.address).call() is True
    assert f.token_allowed(v.stranger).call() is False
    assert f.escrows(new_escrow_id()).call() == (ZERO, ZERO, ZERO, 0, 0, 0, 0, 0, 0)
    for role in (ROLE_OPERATOR, ROLE_ARBITER, ROLE_BACKUP_ARBITER):
        assert f.proposals(role).call() == (ZERO, 0)
    code = bytes(v.w3.eth.get_code(v.escrow.address))
    assert code.startswith(bytes.fromhex(load_artifact("EscrowV2").bytecode_runtime[2:]))

    changes = v.escrow.events.RoleChanged().get_logs(from_block=0)
    ours = [dict(e["args"]) for e in changes if e["address"] == v.escrow.address]
    assert ours == [
        {"role": ROLE_OWNER, "old_holder": ZERO, "new_holder": v.owner},
        {"role": ROLE_OPERATOR, "old_holder": ZERO, "new_holder": v.operator.address},
        {"role": ROLE_ARBITER, "old_holder": ZERO, "new_holder": v.arbiter},
        {"role": ROLE_BACKUP_ARBITER, "old_holder": ZERO, "new_holder": v.backup},
    ]


@pytest.mark.parametrize(
    ("roles", "reason"),
    [
        (("zero", "operator", "arbiter", "backup"), "owner is zero"),
        (("owner", "zero", "arbiter", "backup"), "operator is zero"),
        (("owner", "operator", "zero", "backup"), "arbiter is zero"),
        (("owner", "operator", "arbiter", "zero"), "backup arbiter is zero"),
        (("owner", "operator", "operator", "backup"), "operator is arbiter"),
        (("owner", "operator", "arbiter", "operator"), "operator is backup arbiter"),
        (("owner", "operator", "arbiter", "arbiter"), "arbiter is backup arbiter"),
        (("operator", "operator", "arbiter", "backup"), "operator is owner"),
    ],
)
def test_constructor_refuses_shared_or_zero_keys(
    v: V2Setup, roles: tuple[str, ...], reason: str
) -> None:
    who = {
        "zero": ZERO,
        "owner": v.owner,
        "operator": v.operator.address,
        "arbiter": v.arbiter,
        "backup": v.backup,
    }
    with reverts(f"EscrowV2: {reason}"):
        deploy_v2(v.w3, v.deployer, *(who[r] for r in roles))


@pytest.mark.parametrize(
    ("delay", "window", "reason"),
    [
        (0, DAY, "rotation delay is zero"),
        (DAY, 0, "dispute window is zero"),
        (365 * DAY + 1, DAY, "rotation delay too long"),
        (DAY, 365 * DAY + 1, "dispute window too long"),
    ],
)
def test_constructor_refuses_bad_periods(v: V2Setup, delay: int, window: int, reason: str) -> None:
    with reverts(f"EscrowV2: {reason}"):
        deploy_v2(v.w3, v.deployer, v.owner, v.operator.address, v.arbiter, v.backup, delay, window)


def test_digest_matches_eth_account_and_an_independent_encoding(v: V2Setup) -> None:
    intent = v.token_intent()
    message = intent.typed_data(v.node.chain_id, v.escrow.address)
    signable = encode_typed_data(full_message=message)
    app_digest = keccak(b"\x19\x01" + signable.header + signable.body)
    assert v.f.domain_separator().call() == signable.header
    assert v.f.intent_digest(*intent.digest_args()).call() == app_digest
    assert v.operator.sign_typed_data(full_message=message).message_hash == app_digest

    domain = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(
                    b"EIP712Domain(string name,string version,uint256 chainId,"
                    b"address verifyingContract)"
                ),
                keccak(b"OrderpayEscrow"),
                keccak(b"2"),
                31337,
                v.escrow.address,
            ],
        )
    )
    struct = keccak(
        abi_encode(
            ["bytes32", "bytes32", *["address"] * 3, *["uint256"] * 3],
            [keccak(ESCROW_INTENT_TYPE.encode()), *intent.digest_args()],
        )
    )
    assert keccak(b"\x19\x01" + domain + struct) == app_digest


def test_the_digest_depends_on_every_field_and_the_contract(v: V2Setup) -> None:
    intent = v.intent()
    digest = bytes(v.f.intent_digest(*intent.digest_args()).call())
    changed = [
        dataclasses.replace(intent, escrow_id=new_escrow_id()),
        dataclasses.replace(intent, payer=v.stranger),
        dataclasses.replace(intent, seller=v.stranger),
        dataclasses.replace(intent, token=v.token.address),
        dataclasses.replace(intent, amount=intent.amount + 1),
        dataclasses.replace(intent, authorization_expiry=intent.authorization_expiry + 1),
        dataclasses.replace(intent, deadline=intent.deadline + 1),
    ]
    digests = {bytes(v.f.intent_digest(*i.digest_args()).call()) for i in changed}
    assert len(digests) == len(changed) and digest not in digests
    other = deploy_v2(v.w3, v.deployer, v.owner, v.operator.address, v.arbiter, v.backup)
    assert bytes(other.functions.intent_digest(*intent.digest_args()).call()) != digest


# --- happy paths --------------------------------------------------------------------------


@pytest.mark.parametrize("releaser", ["buyer", "operator"])
def test_native_deposit_then_release(v: V2Setup, releaser: str) -> None:
    intent = v.intent(amount=3 * ETH + 7)
    buyer_before, seller_before = v.balance(v.buyer), v.balance(v.seller)

    receipt = v.deposit(intent)
    eid, amount = intent.escrow_id, intent.amount
    assert v.balance(v.escrow.address) == amount
    assert v.balance(v.buyer) == buyer_before - amount - gas_cost(receipt)
    assert v.state(eid) == (
        v.buyer,
        v.seller,
        NATIVE,
        amount,
        amount,
        0,
        0,
        EscrowState.FUNDED,
        intent.authorization_expiry,
        0,
    )
    assert v.f.escrowed_total(NATIVE).call() == amount
    assert v.events(receipt, "Deposited") == [
        {
            "escrow_id": eid,
            "buyer": v.buyer,
            "seller": v.seller,
            "token": NATIVE,
            "amount": amount,
            "authorization_expiry": intent.authorization_expiry,
        }
    ]

    who = v.operator.address if releaser == "operator" else v.buyer
    receipt = v.send(who, v.f.release(eid))
    assert v.balance(v.seller) == seller_before + amount
    assert v.balance(v.escrow.address) == 0
    assert v.state(eid)[4:8] == (0, amount, 0, EscrowState.CLOSED)
    assert v.f.escrowed_total(NATIVE).call() == 0
    assert v.events(receipt, "Released") == [
        {"escrow_id": eid, "seller": v.seller, "amount": amount, "by": who}
    ]
    assert v.events(receipt, "PayoutDeferred") == []


def test_token_deposit_partial_refund_then_release(v: V2Setup) -> None:
    intent = v.token_intent(amount=100 * USDC)
    v.fund_and_approve(intent.amount)
    v.deposit(intent)
    eid, part = intent.escrow_id, 30 * USDC + 5
    assert v.balance(v.escrow.address, v.token) == 100 * USDC
    assert v.balance(v.buyer, v.token) == 0

    receipt = v.send(v.seller, v.f.refund(eid, part))
    assert v.events(receipt, "Refunded") == [
        {
            "escrow_id": eid,
            "buyer": v.buyer,
            "amount": part,
            "remaining": 100 * USDC - part,
            "by": v.seller,
        }
    ]
    assert v.f.remaining(eid).call() == 100 * USDC - part
    assert v.f.escrowed_total(v.token.address).call() == 100 * USDC - part

    v.send(v.operator.address, v.f.release(eid))
    assert v.balance(v.buyer, v.token) == part
    assert v.balance(v.seller, v.token) == 100 * USDC - part
    assert v.balance(v.escrow.address, v.token) == 0
    assert v.state(eid)[4:8] == (0, 100 * USDC - part, part, EscrowState.CLOSED)
    assert v.f.escrowed_total(v.token.address).call() == 0


@pytest.mark.parametrize("opener", ["buyer", "seller"])
def test_dispute_then_the_arbiter_splits(v: V2Setup, opener: str) -> None:
    intent = v.funded(v.token)
    eid = intent.escrow_id
    receipt = v.send(getattr(v, opener), v.f.dispute(eid))
    deadline = v.block_time(receipt) + DISPUTE_WINDOW
    assert v.events(receipt, "Disputed") == [
        {"escrow_id": eid, "by": getattr(v, opener), "dispute_deadline": deadline}
    ]
    assert v.state(eid)[7:] == (EscrowState.DISPUTED, intent.authorization_expiry, deadline)

    receipt = v.send(v.arbiter, v.f.resolve(eid, 40 * USDC + 1, 60 * USDC - 1))
    assert v.events(receipt, "Resolved") == [
        {
            "escrow_id": eid,
            "buyer_amount": 40 * USDC + 1,
            "seller_amount": 60 * USDC - 1,
            "by": v.arbiter,
        }
    ]
    assert v.balance(v.buyer, v.token) == 40 * USDC + 1
    assert v.balance(v.seller, v.token) == 60 * USDC - 1
    assert v.state(eid)[4:8] == (0, 60 * USDC - 1, 40 * USDC + 1, EscrowState.CLOSED)
    assert v.f.escrowed_total(v.token.address).call() == 0


def test_events_name_the_escrow_id_first(v: V2Setup) -> None:
    start = v.w3.eth.block_number + 1
    intent = v.funded(v.token)
    eid = intent.escrow_id
    v.send(v.seller, v.f.refund(eid, 10 * USDC))
    v.send(v.buyer, v.f.dispute(eid))
    v.travel(DISPUTE_WINDOW + 60)
    v.send(v.buyer, v.f.reclaim(eid))
    escrow_events = ("Deposited", "Refunded", "Disputed", "Reclaimed")
    topics = {bytes(HexBytes(getattr(v.escrow.events, n)().topic)): n for n in escrow_events}
    logs = v.w3.eth.get_logs({"address": v.escrow.address, "fromBlock": start})
    assert [topics[bytes(log["topics"][0])] for log in logs] == list(escrow_events)
    assert all(bytes(log["topics"][1]) == eid for log in logs)


# --- finding 1: squatted ids ----------------------------------------------------------------


def test_v1_lets_a_squatter_take_the_id(v: V2Setup) -> None:
    """The finding, on v1: a stranger funds the buyer's id first, with other terms."""
    v1 = deploy.escrow_contract(
        v.w3, deploy.deploy_escrow(v.w3, v.deployer, v.operator.address, v.arbiter)
    )
    eid = new_escrow_id()
    v.send(v.stranger, v1.functions.deposit(eid, v.spare.address, NATIVE, 1), value=1)
    with reverts("Escrow: id already used"):
        v.send(v.buyer, v1.functions.deposit(eid, v.seller, NATIVE, ETH), value=ETH)


def test_a_squatter_cannot_take_the_buyers_id(v: V2Setup) -> None:
    intent = v.intent()
    signature = v.sign(intent)  # the operator's intent for the buyer
    eid = intent.escrow_id
    before = v.ledger(eid)
    squats = [
        # the buyer's transaction copied from the mempool, sent by the squatter
        (intent, signature),
        # same id, the squatter's terms, the buyer's signature
        (dataclasses.replace(intent, seller=v.spare.address, amount=1), signature),
        (dataclasses.replace(intent, payer=v.stranger, seller=v.seller, amount=1), signature),
        # the squatter signing its own intent
        (
            dataclasses.replace(intent, payer=v.stranger, amount=1),
            v.sign(dataclasses.replace(intent, payer=v.stranger, amount=1), key=v.spare),
        ),
    ]
    for squat, sig in squats:
        with reverts("EscrowV2: bad signature"):
            v.deposit(squat, sig, sender=v.stranger)
    assert v.ledger(eid) == before
    assert v.state(eid)[7] == EscrowState.NONE

    v.deposit(intent, signature)  # the buyer's own deposit goes through
    assert v.state(eid)[:4] == (v.buyer, v.seller, NATIVE, intent.amount)
    assert v.state(eid)[7] == EscrowState.FUNDED


def test_an_intent_names_one_payer(v: V2Setup) -> None:
    """An intent issued to the stranger cannot be spent by the buyer, and vice versa."""
    theirs = v.intent(payer=v.stranger)
    before = v.ledger(theirs.escrow_id)
    with reverts("EscrowV2: bad signature"):
        v.deposit(theirs, sender=v.buyer)
    assert v.ledger(theirs.escrow_id) == before
    v.deposit(theirs)  # from the stranger, as signed
    assert v.state(theirs.escrow_id)[0] == v.stranger


@pytest.mark.parametrize(
    "field", ["escrow_id", "seller", "token", "amount", "authorization_expiry", "deadline"]
)
def test_a_field_changed_under_a_valid_signature_reverts(v: V2Setup, field: str) -> None:
    intent = v.intent()
    signature = v.sign(intent)
    changes: dict[str, Any] = {
        "escrow_id": new_escrow_id(),
        "seller": v.stranger,
        "token": v.token.address,
        "amount": intent.amount + 1,
        "authorization_expiry": intent.authorization_expiry + 1,
        "deadline": intent.deadline + 1,
    }
    tampered = dataclasses.replace(intent, **{field: changes[field]})
    if tampered.token != NATIVE:
        v.fund_and_approve(tampered.amount)
    before = v.ledger(intent.escrow_id, tampered.escrow_id)
    with reverts("EscrowV2: bad signature"):
        v.deposit(tampered, signature)
    assert v.ledger(intent.escrow_id, tampered.escrow_id) == before
    v.deposit(intent, signature)


def test_an_intent_signed_by_another_key_or_for_another_contract_reverts(v: V2Setup) -> None:
    intent = v.intent()
    other = deploy_v2(v.w3, v.deployer, v.owner, v.operator.address, v.arbiter, v.backup)
    before = v.ledger(intent.escrow_id)
    with reverts("EscrowV2: bad signature"):
        v.deposit(intent, v.sign(intent, key=v.spare))
    with reverts("EscrowV2: bad signature"):
        v.deposit(intent, v.sign(intent, contract=other))
    assert v.ledger(intent.escrow_id) == before


def test_a_high_s_signature_reverts(v: V2Setup) -> None:
    intent = v.intent()
    signed = v.operator.sign_typed_data(
        full_message=intent.typed_data(v.node.chain_id, v.escrow.address)
    )
    twin_s, twin_v = SECP256K1_N - signed.s, 55 - signed.v  # 27 <-> 28
    twin = signed.r.to_bytes(32, "big") + twin_s.to_bytes(32, "big") + bytes([twin_v])
    precompile_input = (
        bytes(signed.message_hash)
        + twin_v.to_bytes(32, "big")
        + signed.r.to_bytes(32, "big")
        + twin_s.to_bytes(32, "big")
    )
    recovered = v.w3.eth.call({"to": "0x" + "00" * 19 + "01", "data": precompile_input})
    assert Web3.to_checksum_address(recovered[12:]) == v.operator.address  # a valid twin

    before = v.ledger(intent.escrow_id)
    with reverts("EscrowV2: bad signature"):
        v.deposit(intent, twin)
    assert v.ledger(intent.escrow_id) == before
    v.deposit(intent, bytes(signed.signature))


@pytest.mark.parametrize("defect", ["v 0/1", "v 29", "64 bytes", "empty", "all zero"])
def test_a_malformed_signature_reverts(v: V2Setup, defect: str) -> None:
    intent = v.intent()
    good = v.sign(intent)
    bad = {
        "v 0/1": good[:64] + bytes([good[64] - 27]),
        "v 29": good[:64] + bytes([29]),
        "64 bytes": good[:64],
        "empty": b"",
        "all zero": bytes(64) + bytes([27]),
    }[defect]
    before = v.ledger(intent.escrow_id)
    with reverts("EscrowV2: bad signature"):
        v.deposit(intent, bad)
    assert v.ledger(intent.escrow_id) == before


def test_a_replayed_intent_reverts(v: V2Setup) -> None:
    intent = v.intent()
    signature = v.sign(intent)
    v.deposit(intent, signature)
    before = v.ledger(intent.escrow_id)
    with reverts("EscrowV2: id already used"):
        v.deposit(intent, signature)
    with reverts("EscrowV2: id already used"):  # a fresh valid intent for the same id
        v.deposit(dataclasses.replace(intent, payer=v.stranger, amount=ETH))
    assert v.ledger(intent.escrow_id) == before

    v.send(v.buyer, v.f.release(intent.escrow_id))
    before = v.ledger(intent.escrow_id)
    with reverts("EscrowV2: id already used"):  # also once closed
        v.deposit(intent, signature)
    assert v.ledger(intent.escrow_id) == before


def test_an_expired_intent_reverts(v: V2Setup) -> None:
    intent = v.intent(deadline=v.now() + 60)
    signature = v.sign(intent)
    v.travel(120)
    before = v.ledger(intent.escrow_id)
    with reverts("EscrowV2: intent expired"):
        v.deposit(intent, signature)
    assert v.ledger(intent.escrow_id) == before


def test_an_intent_whose_authorization_already_expired_reverts(v: V2Setup) -> None:
    intent = v.intent(authorization_expiry=v.now() - 1)
    before = v.ledger(intent.escrow_id)
    with reverts("EscrowV2: authorization expired"):
        v.deposit(intent)
    assert v.ledger(intent.escrow_id) == before


def test_bad_intent_fields_revert(v: V2Setup) -> None:
    """Each is validly signed, so only the field's own check can refuse it."""
    cases = [
        ("EscrowV2: amount is zero", v.intent(amount=0)),
        ("EscrowV2: seller is zero", v.intent(seller=ZERO)),
        ("EscrowV2: seller is buyer", v.intent(seller=v.buyer)),
        ("EscrowV2: seller is escrow", v.intent(seller=v.escrow.address)),
    ]
    for reason, intent in cases:
        before = v.ledger(intent.escrow_id)
        with reverts(reason):
            v.deposit(intent)
        assert v.ledger(intent.escrow_id) == before


# --- exact amounts and the allow-list ---------------------------------------------------------


@pytest.mark.parametrize("delta", [-1, 1, -(2 * ETH)])
def test_a_native_value_off_by_any_amount_reverts(v: V2Setup, delta: int) -> None:
    intent = v.intent(amount=2 * ETH)
    before = v.ledger(intent.escrow_id)
    with reverts("EscrowV2: value != amount"):
        v.deposit(intent, value=intent.amount + delta)
    assert v.ledger(intent.escrow_id) == before


@pytest.mark.parametrize("value", [1, 125 * USDC + 1])
def test_value_sent_with_a_token_deposit_reverts(v: V2Setup, value: int) -> None:
    intent = v.token_intent()
    v.fund_and_approve(intent.amount)
    before = v.ledger(intent.escrow_id)
    with reverts("EscrowV2: value with token"):
        v.deposit(intent, value=value)
    assert v.ledger(intent.escrow_id) == before


def test_a_token_deposit_one_unit_short_of_allowance_reverts(v: V2Setup) -> None:
    intent = v.token_intent()
    v.send(v.deployer, v.token.functions.mint(v.buyer, intent.amount))
    v.send(v.buyer, v.token.functions.approve(v.escrow.address, intent.amount - 1))
    before = v.ledger(intent.escrow_id)
    with reverts("TestToken: allowance too low"):
        v.deposit(intent)
    assert v.ledger(intent.escrow_id) == before


def test_a_fee_on_transfer_token_is_refused(v: V2Setup) -> None:
    odd = v.deploy_test_contract("FalseToken")
    v.allow(odd)
    v.send(v.deployer, odd.functions.set_fee_bps(1))  # 0.01 %: one unit short of 10,000
    intent = v.intent(token=odd.address, amount=10_000)
    v.fund_and_approve(intent.amount, odd)
    before = v.ledger(intent.escrow_id, tokens=(odd,))
    with reverts("EscrowV2: amount not received"):
        v.deposit(intent)
    assert v.ledger(intent.escrow_id, tokens=(odd,)) == before


def test_a_token_returning_false_on_deposit_is_refused(v: V2Setup) -> None:
    odd = v.deploy_test_contract("FalseToken")
    v.allow(odd)
    intent = v.intent(token=odd.address, amount=10 * USDC)
    v.fund_and_approve(intent.amount, odd)
    v.send(v.deployer, odd.functions.set_fail_transfers(True))
    before = v.ledger(intent.escrow_id, tokens=(odd,))
    with reverts("EscrowV2: transferFrom failed"):
        v.deposit(intent)
    assert v.ledger(intent.escrow_id, tokens=(odd,)) == before


def test_a_token_not_on_the_allow_list_is_refused(v: V2Setup) -> None:
    odd = v.deploy_test_contract("NoBoolToken")
    intent = v.intent(token=odd.address, amount=50 * USDC)
    v.fund_and_approve(intent.amount, odd)
    before = v.ledger(intent.escrow_id, tokens=(odd,))
    with reverts("EscrowV2: token not allowed"):  # validly signed, still refused
        v.deposit(intent)
    assert v.ledger(intent.escrow_id, tokens=(odd,)) == before

    with reverts("EscrowV2: not owner"):
        v.send(v.operator.address, v.f.set_token_allowed(odd.address, True))
    receipt = v.send(v.owner, v.f.set_token_allowed(odd.address, True))
    assert v.events(receipt, "TokenAllowed") == [{"token": odd.address, "allowed": True}]
    assert v.f.token_allowed(odd.address).call() is True
    v.deposit(intent)
    assert v.balance(v.escrow.address, odd) == 50 * USDC

    # taken off the list: new deposits are refused, the open escrow still pays out
    v.send(v.owner, v.f.set_token_allowed(odd.address, False))
    again = v.intent(token=odd.address, amount=USDC)
    v.fund_and_approve(again.amount, odd)
    with reverts("EscrowV2: token not allowed"):
        v.deposit(again)
    v.send(v.buyer, v.f.release(intent.escrow_id))
    assert v.balance(v.seller, odd) == 50 * USDC


def test_the_allow_list_refuses_native_and_codeless_tokens(v: V2Setup) -> None:
    with reverts("EscrowV2: native coin always allowed"):
        v.send(v.owner, v.f.set_token_allowed(NATIVE, False))
    with reverts("EscrowV2: token has no code"):
        v.send(v.owner, v.f.set_token_allowed(v.stranger, True))
    assert v.f.token_allowed(NATIVE).call() is True
    assert v.f.token_allowed(v.stranger).call() is False


# --- finding 2: the buyer's way out -------------------------------------------------------


def test_reclaim_after_the_authorization_expiry(v: V2Setup) -> None:
    intent = v.funded(v.token, authorization_expiry=v.now() + DAY)
    eid = intent.escrow_id
    v.send(v.seller, v.f.refund(eid, 25 * USDC))
    before = v.ledger(eid)
    with reverts("EscrowV2: authorization not expired"):
        v.send(v.buyer, v.f.reclaim(eid))
    v.travel(DAY - 120)
    with reverts("EscrowV2: authorization not expired"):
        v.send(v.buyer, v.f.reclaim(eid))
    assert v.ledger(eid) == before

    v.travel(240)
    with reverts("EscrowV2: not buyer"):
        v.send(v.seller, v.f.reclaim(eid))
    with reverts("EscrowV2: not buyer"):
        v.send(v.operator.address, v.f.reclaim(eid))
    assert v.ledger(eid) == before

    receipt = v.send(v.buyer, v.f.reclaim(eid))
    assert v.events(receipt, "Reclaimed") == [
        {"escrow_id": eid, "buyer": v.buyer, "amount": 75 * USDC}
    ]
    assert v.balance(v.buyer, v.token) == 100 * USDC
    assert v.balance(v.escrow.address, v.token) == 0
    assert v.state(eid)[4:8] == (0, 0, 100 * USDC, EscrowState.CLOSED)
    assert v.f.escrowed_total(v.token.address).call() == 0
    with reverts("EscrowV2: not funded"):
        v.send(v.buyer, v.f.reclaim(eid))


@pytest.mark.parametrize("ending", ["release", "refund all", "resolve"])
def test_reclaim_after_the_escrow_closed_reverts(v: V2Setup, ending: str) -> None:
    intent = v.funded(authorization_expiry=v.now() + DAY)
    eid = intent.escrow_id
    if ending == "release":
        v.send(v.buyer, v.f.release(eid))
    elif ending == "refund all":
        v.send(v.seller, v.f.refund(eid, intent.amount))
    else:
        v.send(v.seller, v.f.dispute(eid))
        v.send(v.arbiter, v.f.resolve(eid, 0, intent.amount))
    v.travel(DISPUTE_WINDOW + DAY)
    before = v.ledger(eid)
    with reverts("EscrowV2: not funded"):
        v.send(v.buyer, v.f.reclaim(eid))
    assert v.ledger(eid) == before


def test_reclaim_of_an_unknown_id_reverts(v: V2Setup) -> None:
    with reverts("EscrowV2: not funded"):
        v.send(v.buyer, v.f.reclaim(new_escrow_id()))


def test_after_the_authorization_expiry_the_operator_cannot_release(v: V2Setup) -> None:
    """The authorization is what lets the operator capture: past it, only the buyer's way."""
    intent = v.funded(authorization_expiry=v.now() + HOUR)
    eid = intent.escrow_id
    v.travel(HOUR + 60)
    before = v.ledger(eid)
    with reverts("EscrowV2: authorization expired"):
        v.send(v.operator.address, v.f.release(eid))
    with reverts("EscrowV2: authorization expired"):  # and no dispute freezes it any more
        v.send(v.seller, v.f.dispute(eid))
    assert v.ledger(eid) == before
    v.send(v.seller, v.f.refund(eid, ETH))  # refunds (to the buyer) are still fine
    v.send(v.buyer, v.f.reclaim(eid))
    assert v.state(eid)[4:8] == (0, 0, intent.amount, EscrowState.CLOSED)


def test_the_buyer_may_still_release_after_the_expiry(v: V2Setup) -> None:
    intent = v.funded(authorization_expiry=v.now() + HOUR)
    v.travel(HOUR + 60)
    v.send(v.buyer, v.f.release(intent.escrow_id))
    assert v.state(intent.escrow_id)[5] == intent.amount


def test_silent_arbiter_backup_arbiter_resolves_after_the_dispute_deadline(v: V2Setup) -> None:
    intent = v.funded(v.token)
    eid = intent.escrow_id
    receipt = v.send(v.buyer, v.f.dispute(eid))
    deadline = v.block_time(receipt) + DISPUTE_WINDOW
    before = v.ledger(eid)
    with reverts("EscrowV2: dispute window open"):
        v.send(v.backup, v.f.resolve(eid, 30 * USDC, 70 * USDC))
    v.travel(DISPUTE_WINDOW - 120)
    with reverts("EscrowV2: dispute window open"):
        v.send(v.backup, v.f.resolve(eid, 30 * USDC, 70 * USDC))
    v.travel(240)
    assert v.now() > deadline
    for who in (v.stranger, v.operator.address, v.buyer, v.seller, v.owner):
        with reverts("EscrowV2: not arbiter"):
            v.send(who, v.f.resolve(eid, 30 * USDC, 70 * USDC))
    with reverts("EscrowV2: split != remaining"):
        v.send(v.backup, v.f.resolve(eid, 30 * USDC, 70 * USDC + 1))
    assert v.ledger(eid) == before

    receipt = v.send(v.backup, v.f.resolve(eid, 30 * USDC, 70 * USDC))
    assert v.events(receipt, "Resolved") == [
        {"escrow_id": eid, "buyer_amount": 30 * USDC, "seller_amount": 70 * USDC, "by": v.backup}
    ]
    assert v.balance(v.buyer, v.token) == 30 * USDC
    assert v.balance(v.seller, v.token) == 70 * USDC
    assert v.state(eid)[7] == EscrowState.CLOSED


def test_the_buyer_reclaims_after_the_dispute_deadline(v: V2Setup) -> None:
    intent = v.funded(v.token, authorization_expiry=v.now() + 30 * DAY)
    eid = intent.escrow_id
    v.send(v.seller, v.f.dispute(eid))
    before = v.ledger(eid)
    with reverts("EscrowV2: dispute window open"):
        v.send(v.buyer, v.f.reclaim(eid))
    v.travel(DISPUTE_WINDOW - 120)
    with reverts("EscrowV2: dispute window open"):
        v.send(v.buyer, v.f.reclaim(eid))
    v.travel(240)
    with reverts("EscrowV2: not buyer"):
        v.send(v.seller, v.f.reclaim(eid))
    assert v.ledger(eid) == before

    receipt = v.send(v.buyer, v.f.reclaim(eid))
    assert v.events(receipt, "Reclaimed") == [
        {"escrow_id": eid, "buyer": v.buyer, "amount": 100 * USDC}
    ]
    assert v.balance(v.buyer, v.token) == 100 * USDC
    assert v.state(eid)[4:8] == (0, 0, 100 * USDC, EscrowState.CLOSED)
    with reverts("EscrowV2: not disputed"):  # nothing left for the arbiters
        v.send(v.arbiter, v.f.resolve(eid, 0, 0))


def test_the_arbiter_may_still_resolve_after_the_dispute_deadline(v: V2Setup) -> None:
    intent = v.funded()
    v.send(v.buyer, v.f.dispute(intent.escrow_id))
    v.travel(DISPUTE_WINDOW + 60)
    v.send(v.arbiter, v.f.resolve(intent.escrow_id, 0, intent.amount))
    assert v.state(intent.escrow_id)[5] == intent.amount


def test_a_dispute_freezes_release_refund_and_a_second_dispute(v: V2Setup) -> None:
    intent = v.funded()
    eid = intent.escrow_id
    v.send(v.buyer, v.f.dispute(eid))
    before = v.ledger(eid)
    with reverts("EscrowV2: not funded"):
        v.send(v.operator.address, v.f.release(eid))
    with reverts("EscrowV2: not funded"):
        v.send(v.seller, v.f.refund(eid, 1))
    with reverts("EscrowV2: not funded"):
        v.send(v.seller, v.f.dispute(eid))
    assert v.ledger(eid) == before


def test_callers_are_checked(v: V2Setup) -> None:
    intent = v.funded()
    eid = intent.escrow_id
    before = v.ledger(eid)
    for who in (v.seller, v.stranger, v.arbiter, v.backup, v.owner):
        with reverts("EscrowV2: not buyer or operator"):
            v.send(who, v.f.release(eid))
    for who in (v.buyer, v.stranger, v.arbiter, v.backup, v.owner):
        with reverts("EscrowV2: not seller or operator"):
            v.send(who, v.f.refund(eid, 1))
    for who in (v.operator.address, v.stranger, v.arbiter, v.owner):
        with reverts("EscrowV2: not buyer or seller"):
            v.send(who, v.f.dispute(eid))
    with reverts("EscrowV2: not disputed"):
        v.send(v.arbiter, v.f.resolve(eid, intent.amount, 0))
    with reverts("EscrowV2: amount is zero"):
        v.send(v.seller, v.f.refund(eid, 0))
    with reverts("EscrowV2: amount > remaining"):
        v.send(v.seller, v.f.refund(eid, intent.amount + 1))
    assert v.ledger(eid) == before


# --- finding 3: rotation and ownership ------------------------------------------------------


def test_operator_rotation_waits_for_the_delay_and_retires_the_old_key(v: V2Setup) -> None:
    old, new = v.operator, v.spare
    far = v.now() + 30 * DAY
    pending = v.intent(deadline=far, authorization_expiry=far)
    old_signature = v.sign(pending)  # issued before the rotation, not yet used
    funded = v.funded(authorization_expiry=far)

    for who in (v.stranger, old.address, v.arbiter):
        with reverts("EscrowV2: not owner"):
            v.send(who, v.f.propose_operator(new.address))
    receipt = v.send(v.owner, v.f.propose_operator(new.address))
    ready_at = v.block_time(receipt) + ROTATION_DELAY
    assert v.events(receipt, "RoleProposed") == [
        {"role": ROLE_OPERATOR, "candidate": new.address, "not_before": ready_at}
    ]
    assert v.f.proposals(ROLE_OPERATOR).call() == (new.address, ready_at)

    with reverts("EscrowV2: rotation delay not over"):
        v.send(v.owner, v.f.accept_operator())
    v.travel(ROTATION_DELAY - 120)
    with reverts("EscrowV2: rotation delay not over"):
        v.send(v.owner, v.f.accept_operator())
    v.travel(240)
    with reverts("EscrowV2: not owner"):  # the candidate cannot install itself
        v.send(new.address, v.f.accept_operator())
    assert v.f.operator().call() == old.address
    v.deposit(v.intent())  # the old key still signs until the change

    receipt = v.send(v.owner, v.f.accept_operator())
    assert v.events(receipt, "RoleChanged") == [
        {"role": ROLE_OPERATOR, "old_holder": old.address, "new_holder": new.address}
    ]
    assert v.f.operator().call() == new.address
    assert v.f.proposals(ROLE_OPERATOR).call() == (ZERO, 0)

    before = v.ledger(pending.escrow_id, funded.escrow_id)
    with reverts("EscrowV2: bad signature"):  # signed before the rotation
        v.deposit(pending, old_signature)
    with reverts("EscrowV2: bad signature"):  # signed after it by the old key
        v.deposit(v.intent(escrow_id=pending.escrow_id, deadline=far, authorization_expiry=far))
    with reverts("EscrowV2: not buyer or operator"):
        v.send(old.address, v.f.release(funded.escrow_id))
    with reverts("EscrowV2: not seller or operator"):
        v.send(old.address, v.f.refund(funded.escrow_id, 1))
    assert v.ledger(pending.escrow_id, funded.escrow_id) == before

    v.deposit(pending, v.sign(pending, key=new))
    v.send(new.address, v.f.release(funded.escrow_id))
    assert v.state(funded.escrow_id)[7] == EscrowState.CLOSED


@pytest.mark.parametrize("role", ["arbiter", "backup_arbiter"])
def test_arbiter_rotation(v: V2Setup, role: str) -> None:
    old = v.arbiter if role == "arbiter" else v.backup
    new = v.spare.address
    role_id = ROLE_ARBITER if role == "arbiter" else ROLE_BACKUP_ARBITER
    propose = getattr(v.f, f"propose_{role}")
    accept = getattr(v.f, f"accept_{role}")
    intent = v.funded(v.token, authorization_expiry=v.now() + 30 * DAY)
    eid = intent.escrow_id
    v.send(v.seller, v.f.dispute(eid))

    with reverts("EscrowV2: not owner"):
        v.send(old, propose(new))
    v.send(v.owner, propose(new))
    with reverts("EscrowV2: rotation delay not over"):
        v.send(v.owner, accept())
    v.travel(DISPUTE_WINDOW + 60)  # past the delay and the dispute deadline
    receipt = v.send(v.owner, accept())
    assert v.events(receipt, "RoleChanged") == [
        {"role": role_id, "old_holder": old, "new_holder": new}
    ]
    assert getattr(v.f, role)().call() == new

    before = v.ledger(eid)
    with reverts("EscrowV2: not arbiter"):
        v.send(old, v.f.resolve(eid, 50 * USDC, 50 * USDC))
    assert v.ledger(eid) == before
    v.send(new, v.f.resolve(eid, 50 * USDC, 50 * USDC))
    assert v.balance(v.seller, v.token) == 50 * USDC


def test_roles_stay_separate(v: V2Setup) -> None:
    f, op = v.f, v.operator.address
    cases = [
        (f.propose_operator(v.arbiter), "operator is arbiter"),
        (f.propose_operator(v.backup), "operator is backup arbiter"),
        (f.propose_operator(v.owner), "operator is owner"),
        (f.propose_arbiter(op), "operator is arbiter"),
        (f.propose_arbiter(v.backup), "arbiter is backup arbiter"),
        (f.propose_backup_arbiter(op), "operator is backup arbiter"),
        (f.propose_backup_arbiter(v.arbiter), "arbiter is backup arbiter"),
        (f.transfer_ownership(op), "operator is owner"),
    ]
    for call, reason in cases:
        with reverts(f"EscrowV2: {reason}"):
            v.send(v.owner, call)
    for accept in (f.accept_operator(), f.accept_arbiter(), f.accept_backup_arbiter()):
        with reverts("EscrowV2: nothing proposed"):
            v.send(v.owner, accept)

    # two proposals each fine alone but clashing once one is in: the second is refused
    v.send(v.owner, f.propose_operator(v.spare.address))
    v.send(v.owner, f.propose_arbiter(v.spare.address))
    v.travel(ROTATION_DELAY + 60)
    v.send(v.owner, f.accept_operator())
    with reverts("EscrowV2: operator is arbiter"):
        v.send(v.owner, f.accept_arbiter())
    assert (f.operator().call(), f.arbiter().call()) == (v.spare.address, v.arbiter)


def test_a_proposal_can_be_withdrawn(v: V2Setup) -> None:
    v.send(v.owner, v.f.propose_operator(v.spare.address))
    receipt = v.send(v.owner, v.f.propose_operator(ZERO))
    assert v.events(receipt, "RoleProposed") == [
        {"role": ROLE_OPERATOR, "candidate": ZERO, "not_before": 0}
    ]
    v.travel(ROTATION_DELAY + 60)
    with reverts("EscrowV2: nothing proposed"):
        v.send(v.owner, v.f.accept_operator())
    assert v.f.operator().call() == v.operator.address


def test_a_new_proposal_restarts_the_delay(v: V2Setup) -> None:
    v.send(v.owner, v.f.propose_operator(v.spare.address))
    v.travel(ROTATION_DELAY - HOUR)
    v.send(v.owner, v.f.propose_operator(v.stranger))
    v.travel(2 * HOUR)
    with reverts("EscrowV2: rotation delay not over"):
        v.send(v.owner, v.f.accept_operator())
    v.travel(ROTATION_DELAY)
    v.send(v.owner, v.f.accept_operator())
    assert v.f.operator().call() == v.stranger


def test_ownership_moves_in_two_steps(v: V2Setup) -> None:
    with reverts("EscrowV2: not owner"):
        v.send(v.stranger, v.f.transfer_ownership(v.stranger))
    receipt = v.send(v.owner, v.f.transfer_ownership(v.stranger))
    assert v.events(receipt, "RoleProposed") == [
        {"role": ROLE_OWNER, "candidate": v.stranger, "not_before": v.block_time(receipt)}
    ]
    assert v.f.pending_owner().call() == v.stranger
    for who in (v.buyer, v.owner, v.operator.address):
        with reverts("EscrowV2: not pending owner"):
            v.send(who, v.f.accept_ownership())
    assert v.f.owner().call() == v.owner

    receipt = v.send(v.stranger, v.f.accept_ownership())
    assert v.events(receipt, "RoleChanged") == [
        {"role": ROLE_OWNER, "old_holder": v.owner, "new_holder": v.stranger}
    ]
    assert (v.f.owner().call(), v.f.pending_owner().call()) == (v.stranger, ZERO)
    with reverts("EscrowV2: not owner"):
        v.send(v.owner, v.f.pause())
    with reverts("EscrowV2: not pending owner"):
        v.send(v.stranger, v.f.accept_ownership())
    v.send(v.stranger, v.f.pause())
    assert v.f.paused().call() is True


def test_an_ownership_offer_can_be_withdrawn(v: V2Setup) -> None:
    v.send(v.owner, v.f.transfer_ownership(v.stranger))
    v.send(v.owner, v.f.transfer_ownership(ZERO))
    with reverts("EscrowV2: not pending owner"):
        v.send(v.stranger, v.f.accept_ownership())
    assert v.f.owner().call() == v.owner


# --- pause --------------------------------------------------------------------------------


def test_pause_blocks_the_flow_but_not_reclaim_or_withdraw(v: V2Setup) -> None:
    receiver = v.deploy_test_contract("RejectingReceiver")
    owed_intent = v.funded(seller=receiver.address)
    v.send(v.buyer, v.f.release(owed_intent.escrow_id))  # refused push: owed to the receiver
    assert v.owed(receiver.address) == owed_intent.amount
    expiring = v.funded(authorization_expiry=v.now() + DAY)
    disputed = v.funded(authorization_expiry=v.now() + DAY)
    v.send(v.seller, v.f.dispute(disputed.escrow_id))

    for who in (v.operator.address, v.stranger, v.arbiter):
        with reverts("EscrowV2: not owner"):
            v.send(who, v.f.pause())
    receipt = v.send(v.owner, v.f.pause())
    assert v.events(receipt, "Paused") == [{"by": v.owner}]
    with reverts("EscrowV2: paused"):
        v.send(v.owner, v.f.pause())

    eid, did = expiring.escrow_id, disputed.escrow_id
    fresh = v.intent()
    before = v.ledger(eid, did, fresh.escrow_id, who=(receiver.address,))
    with reverts("EscrowV2: paused"):
        v.deposit(fresh)
    with reverts("EscrowV2: paused"):
        v.send(v.buyer, v.f.release(eid))
    with reverts("EscrowV2: paused"):
        v.send(v.operator.address, v.f.release(eid))
    with reverts("EscrowV2: paused"):
        v.send(v.seller, v.f.refund(eid, 1))
    with reverts("EscrowV2: paused"):
        v.send(v.buyer, v.f.dispute(eid))
    with reverts("EscrowV2: paused"):
        v.send(v.arbiter, v.f.resolve(did, disputed.amount, 0))
    assert v.ledger(eid, did, fresh.escrow_id, who=(receiver.address,)) == before

    # the way out stays open while paused
    v.travel(DISPUTE_WINDOW + 60)
    buyer_before = v.balance(v.buyer)
    r1 = v.send(v.buyer, v.f.reclaim(eid))
    r2 = v.send(v.buyer, v.f.reclaim(did))
    assert v.balance(v.buyer) == (
        buyer_before + expiring.amount + disputed.amount - gas_cost(r1) - gas_cost(r2)
    )
    stranger_before = v.balance(v.stranger)
    v.act_as(receiver, v.f.withdraw_to(NATIVE, v.stranger))
    assert v.balance(v.stranger) == stranger_before + owed_intent.amount
    assert v.balance(v.escrow.address) == 0

    with reverts("EscrowV2: not owner"):
        v.send(v.stranger, v.f.unpause())
    receipt = v.send(v.owner, v.f.unpause())
    assert v.events(receipt, "Unpaused") == [{"by": v.owner}]
    with reverts("EscrowV2: not paused"):
        v.send(v.owner, v.f.unpause())
    v.deposit(v.intent())


def test_admin_works_while_paused(v: V2Setup) -> None:
    v.send(v.owner, v.f.pause())
    v.send(v.owner, v.f.propose_operator(v.spare.address))
    v.travel(ROTATION_DELAY + 60)
    v.send(v.owner, v.f.accept_operator())
    assert v.f.operator().call() == v.spare.address


# --- pull payments --------------------------------------------------------------------------


def test_v1_release_to_a_rejecting_seller_reverts(v: V2Setup) -> None:
    """The v1 limit, reproduced: a seller contract refusing native coin blocks release."""
    v1 = deploy.escrow_contract(
        v.w3, deploy.deploy_escrow(v.w3, v.deployer, v.operator.address, v.arbiter)
    )
    receiver = v.deploy_test_contract("RejectingReceiver")
    eid = new_escrow_id()
    v.send(v.buyer, v1.functions.deposit(eid, receiver.address, NATIVE, ETH), value=ETH)
    with pytest.raises(ContractLogicError):
        v.send(v.buyer, v1.functions.release(eid))


@pytest.mark.parametrize("how", ["withdraw_to", "withdraw once accepting"])
def test_a_seller_refusing_native_coin_is_paid_through_withdraw(v: V2Setup, how: str) -> None:
    receiver = v.deploy_test_contract("RejectingReceiver")
    intent = v.funded(seller=receiver.address, amount=3 * ETH)
    eid = intent.escrow_id

    receipt = v.send(v.operator.address, v.f.release(eid))
    assert v.events(receipt, "Released") == [
        {"escrow_id": eid, "seller": receiver.address, "amount": 3 * ETH, "by": v.operator.address}
    ]
    assert v.events(receipt, "PayoutDeferred") == [
        {"token": NATIVE, "recipient": receiver.address, "amount": 3 * ETH}
    ]
    assert v.state(eid)[4:8] == (0, 3 * ETH, 0, EscrowState.CLOSED)
    assert v.balance(receiver.address) == 0
    assert v.balance(v.escrow.address) == 3 * ETH
    assert v.owed(receiver.address) == 3 * ETH
    assert v.f.owed_total(NATIVE).call() == 3 * ETH
    assert v.f.escrowed_total(NATIVE).call() == 0

    before = v.ledger(eid, who=(receiver.address,))
    with reverts("EscrowV2: native transfer failed"):  # still refusing: nothing moves
        v.act_as(receiver, v.f.withdraw(NATIVE))
    with reverts("EscrowV2: nothing owed"):
        v.send(v.seller, v.f.withdraw(NATIVE))
    with reverts("EscrowV2: to is zero"):
        v.act_as(receiver, v.f.withdraw_to(NATIVE, ZERO))
    assert v.ledger(eid, who=(receiver.address,)) == before

    if how == "withdraw_to":
        stranger_before = v.balance(v.stranger)
        receipt = v.act_as(receiver, v.f.withdraw_to(NATIVE, v.stranger))
        assert v.balance(v.stranger) == stranger_before + 3 * ETH
        to = v.stranger
    else:
        v.send(v.deployer, receiver.functions.set_mode(MODE_ACCEPT))
        receipt = v.act_as(receiver, v.f.withdraw(NATIVE))
        assert v.balance(receiver.address) == 3 * ETH
        to = receiver.address
    assert v.events(receipt, "Withdrawn") == [
        {"token": NATIVE, "recipient": receiver.address, "to": to, "amount": 3 * ETH}
    ]
    assert v.owed(receiver.address) == 0
    assert v.f.owed_total(NATIVE).call() == 0
    assert v.balance(v.escrow.address) == 0
    with reverts("EscrowV2: nothing owed"):
        v.act_as(receiver, v.f.withdraw(NATIVE))


def test_a_buyer_refusing_native_coin_reclaims_through_withdraw(v: V2Setup) -> None:
    """The receiver is the buyer: its intent names it, refunds and the reclaim are deferred."""
    receiver = v.deploy_test_contract("RejectingReceiver")
    intent = v.intent(payer=receiver.address, authorization_expiry=v.now() + DAY)
    call = v.f.deposit(*intent.deposit_args(), v.sign(intent))
    v.act_as(receiver, call, value=intent.amount)
    eid = intent.escrow_id
    assert v.state(eid)[0] == receiver.address

    receipt = v.send(v.seller, v.f.refund(eid, ETH // 2))
    assert v.events(receipt, "PayoutDeferred") == [
        {"token": NATIVE, "recipient": receiver.address, "amount": ETH // 2}
    ]
    v.travel(DAY + 60)
    receipt = v.act_as(receiver, v.f.reclaim(eid))
    assert v.events(receipt, "PayoutDeferred") == [
        {"token": NATIVE, "recipient": receiver.address, "amount": intent.amount - ETH // 2}
    ]
    assert v.owed(receiver.address) == intent.amount
    assert v.state(eid)[4:8] == (0, 0, intent.amount, EscrowState.CLOSED)

    v.send(v.deployer, receiver.functions.set_mode(MODE_ACCEPT))
    v.act_as(receiver, v.f.withdraw(NATIVE))
    assert v.balance(receiver.address) == intent.amount
    assert v.balance(v.escrow.address) == 0


def test_a_recipient_burning_gas_costs_a_bounded_amount(v: V2Setup) -> None:
    receiver = v.deploy_test_contract("RejectingReceiver")
    v.send(v.deployer, receiver.functions.set_mode(MODE_BURN))
    intent = v.funded(seller=receiver.address)
    receipt = v.send(v.buyer, v.f.release(intent.escrow_id))
    assert v.events(receipt, "PayoutDeferred") == [
        {"token": NATIVE, "recipient": receiver.address, "amount": intent.amount}
    ]
    assert receipt["gasUsed"] < 200_000


def test_a_token_transfer_returning_false_is_deferred_then_withdrawn(v: V2Setup) -> None:
    odd = v.deploy_test_contract("FalseToken")
    v.allow(odd)
    intent = v.funded(odd)
    eid = intent.escrow_id
    v.send(v.seller, v.f.refund(eid, 40 * USDC))  # pushed while the token works

    v.send(v.deployer, odd.functions.set_fail_transfers(True))
    receipt = v.send(v.buyer, v.f.release(eid))
    assert v.events(receipt, "PayoutDeferred") == [
        {"token": odd.address, "recipient": v.seller, "amount": 60 * USDC}
    ]
    assert v.state(eid)[4:8] == (0, 60 * USDC, 40 * USDC, EscrowState.CLOSED)
    assert v.owed(v.seller, odd.address) == 60 * USDC
    assert v.f.owed_total(odd.address).call() == 60 * USDC
    assert v.f.escrowed_total(odd.address).call() == 0
    assert v.balance(v.escrow.address, odd) == 60 * USDC

    before = v.ledger(eid, tokens=(odd,))
    with reverts("EscrowV2: transfer failed"):
        v.send(v.seller, v.f.withdraw(odd.address))
    assert v.ledger(eid, tokens=(odd,)) == before

    v.send(v.deployer, odd.functions.set_fail_transfers(False))
    receipt = v.send(v.seller, v.f.withdraw(odd.address))
    assert v.events(receipt, "Withdrawn") == [
        {"token": odd.address, "recipient": v.seller, "to": v.seller, "amount": 60 * USDC}
    ]
    assert v.balance(v.seller, odd) == 60 * USDC
    assert v.balance(v.buyer, odd) == 40 * USDC
    assert v.balance(v.escrow.address, odd) == 0
    assert v.f.owed_total(odd.address).call() == 0


def test_a_resolve_pays_the_side_that_can_receive(v: V2Setup) -> None:
    receiver = v.deploy_test_contract("RejectingReceiver")
    intent = v.funded(seller=receiver.address, amount=2 * ETH)
    v.send(v.buyer, v.f.dispute(intent.escrow_id))
    buyer_before = v.balance(v.buyer)
    receipt = v.send(v.arbiter, v.f.resolve(intent.escrow_id, ETH // 4, 2 * ETH - ETH // 4))
    assert v.balance(v.buyer) == buyer_before + ETH // 4
    assert v.events(receipt, "PayoutDeferred") == [
        {"token": NATIVE, "recipient": receiver.address, "amount": 2 * ETH - ETH // 4}
    ]


def test_a_reentrant_token_cannot_reenter_a_payout(v: V2Setup) -> None:
    """The seller is a token contract that calls back into the escrow while being paid."""
    bad = v.deploy_test_contract("ReentrantToken")
    v.allow(bad)
    intent = v.intent(token=bad.address, amount=1_000 * USDC, seller=bad.address)
    v.fund_and_approve(intent.amount, bad)
    v.deposit(intent)
    reentry = v.f.refund(intent.escrow_id, 400 * USDC)._encode_transaction_data()
    v.send(v.deployer, bad.functions.arm(v.escrow.address, reentry))
    v.send(v.operator.address, v.f.refund(intent.escrow_id, 600 * USDC))
    assert bad.functions.hook_calls().call() == 1
    assert bad.functions.hook_successes().call() == 0
    assert v.balance(v.buyer, bad) == 600 * USDC
    assert v.state(intent.escrow_id)[4:8] == (400 * USDC, 0, 600 * USDC, EscrowState.FUNDED)


# --- recover ------------------------------------------------------------------------------------


def test_recover_takes_only_stray_tokens(v: V2Setup) -> None:
    odd = v.deploy_test_contract("FalseToken")
    v.allow(odd)
    held = v.funded(odd)  # 100 held in an open escrow
    owed = v.funded(odd)
    v.send(v.deployer, odd.functions.set_fail_transfers(True))
    v.send(v.buyer, v.f.release(owed.escrow_id))  # 100 owed to the seller
    v.send(v.deployer, odd.functions.set_fail_transfers(False))
    assert v.balance(v.escrow.address, odd) == 200 * USDC

    with reverts("EscrowV2: nothing to recover"):
        v.send(v.owner, v.f.recover(odd.address, v.owner))
    v.send(v.deployer, odd.functions.mint(v.escrow.address, 7))  # sent by mistake
    before = v.ledger(held.escrow_id, tokens=(odd,))
    with reverts("EscrowV2: not owner"):
        v.send(v.operator.address, v.f.recover(odd.address, v.stranger))
    with reverts("EscrowV2: to is zero"):
        v.send(v.owner, v.f.recover(odd.address, ZERO))
    assert v.ledger(held.escrow_id, tokens=(odd,)) == before

    receipt = v.send(v.owner, v.f.recover(odd.address, v.stranger))
    assert v.events(receipt, "Recovered") == [{"token": odd.address, "to": v.stranger, "amount": 7}]
    assert v.balance(v.stranger, odd) == 7
    assert v.balance(v.escrow.address, odd) == 200 * USDC
    with reverts("EscrowV2: nothing to recover"):
        v.send(v.owner, v.f.recover(odd.address, v.stranger))

    # what recover left is still there for its owners
    v.send(v.seller, v.f.withdraw(odd.address))
    v.send(v.buyer, v.f.release(held.escrow_id))
    assert v.balance(v.seller, odd) == 200 * USDC
    assert v.balance(v.escrow.address, odd) == 0


def test_recover_takes_only_stray_native_coin(v: V2Setup) -> None:
    receiver = v.deploy_test_contract("RejectingReceiver")
    v.funded(amount=ETH)  # held
    owed = v.funded(seller=receiver.address, amount=2 * ETH)
    v.send(v.buyer, v.f.release(owed.escrow_id))  # owed to the receiver
    with reverts("EscrowV2: nothing to recover"):
        v.send(v.owner, v.f.recover(NATIVE, v.owner))

    # coin forced in without a call (as a selfdestruct or a block reward would)
    v.node.rpc("anvil_setBalance", [v.escrow.address, hex(3 * ETH + 5)])
    stranger_before = v.balance(v.stranger)
    v.send(v.owner, v.f.recover(NATIVE, v.stranger))
    assert v.balance(v.stranger) == stranger_before + 5
    assert v.balance(v.escrow.address) == 3 * ETH
    with reverts("EscrowV2: nothing to recover"):
        v.send(v.owner, v.f.recover(NATIVE, v.stranger))
