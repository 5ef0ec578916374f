"""The Payments contract on a real anvil: signed intents paid exactly, and refusals.

Intents are signed here with eth_account's EIP-712 support, as the application signs them.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
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
from devtools.contracts.build import CONTRACTS_DIR
from payments.providers.escrow.artifacts import payments_artifact
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
PAYMENTS_SOURCE = CONTRACTS_DIR / "Payments.vy"

PAYMENT_INTENT_FIELDS = [
    {"name": "paymentId", "type": "bytes32"},
    {"name": "token", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "recipient", "type": "address"},
    {"name": "feeAmount", "type": "uint256"},
    {"name": "feeRecipient", "type": "address"},
    {"name": "deadline", "type": "uint256"},
]
PAYMENT_INTENT_TYPE = (
    "PaymentIntent(bytes32 paymentId,address token,uint256 amount,address recipient,"
    "uint256 feeAmount,address feeRecipient,uint256 deadline)"
)


def reverts(match: str) -> pytest.RaisesContext[ContractLogicError]:
    return pytest.raises(ContractLogicError, match=match)


def new_payment_id() -> bytes:
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent; its fields in the order `pay` and `intent_digest` take them."""

    payment_id: bytes
    token: str
    amount: int
    recipient: str
    fee_amount: int
    fee_recipient: str
    deadline: int

    def args(self) -> tuple[Any, ...]:
        return dataclasses.astuple(self)

    def typed_data(self, chain_id: int, verifying_contract: str) -> dict[str, Any]:
        """The full EIP-712 message, as the application builds it."""
        return eip712_message(
            ("OrderpayPayments", "1", chain_id, verifying_contract),
            "PaymentIntent",
            PAYMENT_INTENT_FIELDS,
            self.args(),
        )


@dataclass
class PaymentsSetup:
    """Payments and TestToken deployed on anvil, and who plays which part."""

    node: AnvilNode
    w3: Web3
    payments: Contract
    token: Contract
    deployer: str
    owner: str
    signer: LocalAccount
    payer: str
    recipient: str
    fee_recipient: str
    stranger: str
    other_key: LocalAccount  # a key that is not the signer

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def intent(self, **fields: Any) -> Intent:
        """A native intent of 2 ETH with a 0.05 ETH fee, valid for an hour; override fields."""
        values: dict[str, Any] = {
            "payment_id": new_payment_id(),
            "token": NATIVE,
            "amount": 2 * ETH,
            "recipient": self.recipient,
            "fee_amount": ETH // 20,
            "fee_recipient": self.fee_recipient,
            "deadline": self.now() + 3600,
        }
        values.update(fields)
        return Intent(**values)

    def token_intent(self, **fields: Any) -> Intent:
        """An ERC-20 intent of 125.000001 TestToken with a 1.25 fee; override fields."""
        values: dict[str, Any] = {
            "token": self.token.address,
            "amount": 125 * USDC + 1,
            "fee_amount": 1_250_000,
        }
        values.update(fields)
        return self.intent(**values)

    def sign(
        self, intent: Intent, key: LocalAccount | None = None, contract: Contract | None = None
    ) -> bytes:
        """r ++ s ++ v (v 27 or 28), by the signer unless ``key`` says otherwise."""
        key = key or self.signer
        contract = contract or self.payments
        signed = key.sign_typed_data(
            full_message=intent.typed_data(self.node.chain_id, contract.address)
        )
        return bytes(signed.signature)

    def pay(
        self,
        intent: Intent,
        signature: bytes | None = None,
        *,
        value: int | None = None,
        sender: str = "",
        contract: Contract | None = None,
    ) -> TxReceipt:
        """Send ``pay`` for ``intent``; value defaults to the amount for native coin, else 0."""
        contract = contract or self.payments
        if signature is None:
            signature = self.sign(intent, contract=contract)
        if value is None:
            value = intent.amount if intent.token == NATIVE else 0
        call = contract.functions.pay(*intent.args(), signature)
        return deploy.transact(self.w3, sender or self.payer, call, value=value)

    def send(self, sender: str, call: object, value: int = 0) -> TxReceipt:
        return deploy.transact(self.w3, sender, call, value=value)  # type: ignore[arg-type]

    def balance(self, who: str, token: Contract | None = None) -> int:
        if token is None:
            return int(self.w3.eth.get_balance(Web3.to_checksum_address(who)))
        return int(token.functions.balanceOf(Web3.to_checksum_address(who)).call())

    def fund_and_approve(self, amount: int, token: Contract | None = None, who: str = "") -> None:
        """Mint ``amount`` of ``token`` to the payer (or ``who``) and approve the contract."""
        token = token or self.token
        who = who or self.payer
        self.send(self.deployer, token.functions.mint(who, amount))
        self.send(who, token.functions.approve(self.payments.address, amount))

    def balances(self, token: Contract | None = None) -> tuple[int, ...]:
        """Payer, recipient, fee recipient and contract: native, plus ``token`` if given."""
        people = (self.payer, self.recipient, self.fee_recipient, self.payments.address)
        out = tuple(self.balance(p) for p in people)
        if token is not None:
            out += tuple(self.balance(p, token) for p in people)
        return out

    def used(self, intent: Intent) -> bool:
        return bool(self.payments.functions.used(intent.payment_id).call())

    def deploy_test_contract(self, name: str, *args: object) -> Contract:
        artifact = compiled_test_contract(name)
        address = deploy.deploy_contract(self.w3, self.deployer, artifact, *args)
        return self.w3.eth.contract(address=address, abi=artifact.abi_list())


@pytest.fixture(scope="module")
def payments_setup(anvil: AnvilNode) -> PaymentsSetup:
    """Payments (owner = account 1, signer = account 2's key) and TestToken, once per module."""
    w3 = anvil.w3
    deployer, owner, _signer, payer, recipient, fee_recipient, stranger = anvil.accounts[:7]
    signer = anvil.local_account(2)
    assert signer.address == anvil.accounts[2]
    payments_address = deploy.deploy_payments(w3, deployer, owner, signer.address)
    token_address = deploy.deploy_test_token(w3, deployer)
    return PaymentsSetup(
        node=anvil,
        w3=w3,
        payments=deploy.payments_contract(w3, payments_address),
        token=deploy.token_contract(w3, token_address),
        deployer=deployer,
        owner=owner,
        signer=signer,
        payer=payer,
        recipient=recipient,
        fee_recipient=fee_recipient,
        stranger=stranger,
        other_key=anvil.local_account(7),
    )


@pytest.fixture
def ps(payments_setup: PaymentsSetup) -> Iterator[PaymentsSetup]:
    """The deployed contracts, with the chain put back as it was after each test."""
    snapshot = payments_setup.node.snapshot()
    try:
        yield payments_setup
    finally:
        payments_setup.node.revert(snapshot)


# --- deployment and the EIP-712 digest ----------------------------------------------------


def test_deployed_state(ps: PaymentsSetup) -> None:
    assert ps.payments.functions.owner().call() == ps.owner
    assert ps.payments.functions.signer().call() == ps.signer.address
    assert ps.payments.functions.used(new_payment_id()).call() is False
    code = bytes(ps.w3.eth.get_code(ps.payments.address))
    assert code == bytes.fromhex(payments_artifact().bytecode_runtime[2:])


@pytest.mark.parametrize("zero", ["owner", "signer"])
def test_constructor_refuses_a_zero_address(ps: PaymentsSetup, zero: str) -> None:
    owner = ZERO if zero == "owner" else ps.owner
    signer = ZERO if zero == "signer" else ps.signer.address
    with reverts(f"Payments: {zero} is zero"):
        deploy.deploy_payments(ps.w3, ps.deployer, owner, signer)


def test_digest_matches_eth_account_and_an_independent_encoding(ps: PaymentsSetup) -> None:
    intent = ps.token_intent()
    contract = ps.payments
    signable = encode_typed_data(full_message=intent.typed_data(ps.node.chain_id, contract.address))
    app_digest = keccak(b"\x19\x01" + signable.header + signable.body)

    assert contract.functions.domain_separator().call() == signable.header
    assert contract.functions.intent_digest(*intent.args()).call() == app_digest
    assert (
        Account.sign_typed_data(
            ps.signer.key, full_message=intent.typed_data(ps.node.chain_id, contract.address)
        ).message_hash
        == app_digest
    )

    # the same digest spelt out by hand, from the type strings the contract documents
    domain = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(
                    b"EIP712Domain(string name,string version,uint256 chainId,"
                    b"address verifyingContract)"
                ),
                keccak(b"OrderpayPayments"),
                keccak(b"1"),
                31337,
                contract.address,
            ],
        )
    )
    struct = keccak(
        abi_encode(
            [
                "bytes32",
                "bytes32",
                "address",
                "uint256",
                "address",
                "uint256",
                "address",
                "uint256",
            ],
            [keccak(PAYMENT_INTENT_TYPE.encode()), *intent.args()],
        )
    )
    assert domain == signable.header
    assert keccak(b"\x19\x01" + domain + struct) == app_digest


def test_the_digest_depends_on_every_field_and_the_contract(ps: PaymentsSetup) -> None:
    intent = ps.intent()
    digest = ps.payments.functions.intent_digest(*intent.args()).call()
    changed = [
        dataclasses.replace(intent, payment_id=new_payment_id()),
        dataclasses.replace(intent, token=ps.token.address),
        dataclasses.replace(intent, amount=intent.amount + 1),
        dataclasses.replace(intent, recipient=ps.stranger),
        dataclasses.replace(intent, fee_amount=intent.fee_amount + 1),
        dataclasses.replace(intent, fee_recipient=ps.stranger),
        dataclasses.replace(intent, deadline=intent.deadline + 1),
    ]
    digests = {bytes(ps.payments.functions.intent_digest(*i.args()).call()) for i in changed}
    assert len(digests) == len(changed) and bytes(digest) not in digests

    other = deploy.payments_contract(
        ps.w3, deploy.deploy_payments(ps.w3, ps.deployer, ps.owner, ps.signer.address)
    )
    assert other.functions.intent_digest(*intent.args()).call() != digest


# --- happy paths --------------------------------------------------------------------------


def test_native_payment_moves_exactly_the_amount(ps: PaymentsSetup) -> None:
    intent = ps.intent(amount=3 * ETH + 7, fee_amount=ETH // 100 + 3)
    payer, recipient, fee_recipient, contract = ps.balances()

    receipt = ps.pay(intent)

    net = intent.amount - intent.fee_amount
    assert ps.balances() == (
        payer - intent.amount - gas_cost(receipt),
        recipient + net,
        fee_recipient + intent.fee_amount,
        contract,
    )
    assert contract == 0
    assert ps.used(intent)
    (event,) = ps.payments.events.Paid().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {
        "payment_id": intent.payment_id,
        "payer": ps.payer,
        "token": NATIVE,
        "amount": intent.amount,
        "fee_amount": intent.fee_amount,
        "recipient": ps.recipient,
        "fee_recipient": ps.fee_recipient,
    }


@pytest.mark.parametrize("fee_recipient", ["zero", "fee_recipient"])
def test_native_payment_without_fee(ps: PaymentsSetup, fee_recipient: str) -> None:
    to = ZERO if fee_recipient == "zero" else ps.fee_recipient
    intent = ps.intent(amount=ETH, fee_amount=0, fee_recipient=to)
    payer, recipient, fee_before, _ = ps.balances()

    receipt = ps.pay(intent)

    assert ps.balances() == (payer - ETH - gas_cost(receipt), recipient + ETH, fee_before, 0)
    (event,) = ps.payments.events.Paid().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["fee_amount"] == 0
    assert event["args"]["fee_recipient"] == to


def test_native_payment_all_fee(ps: PaymentsSetup) -> None:
    intent = ps.intent(amount=ETH, fee_amount=ETH)
    _, recipient, fee_recipient, _ = ps.balances()
    ps.pay(intent)
    assert ps.balance(ps.recipient) == recipient
    assert ps.balance(ps.fee_recipient) == fee_recipient + ETH


def test_erc20_payment_after_approve(ps: PaymentsSetup) -> None:
    intent = ps.token_intent()
    ps.fund_and_approve(intent.amount + 5)
    receipt = ps.pay(intent)

    net = intent.amount - intent.fee_amount
    assert ps.balance(ps.payer, ps.token) == 5
    assert ps.balance(ps.recipient, ps.token) == net
    assert ps.balance(ps.fee_recipient, ps.token) == intent.fee_amount
    assert ps.balance(ps.payments.address, ps.token) == 0
    assert ps.token.functions.allowance(ps.payer, ps.payments.address).call() == 5
    assert ps.used(intent)
    (event,) = ps.payments.events.Paid().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {
        "payment_id": intent.payment_id,
        "payer": ps.payer,
        "token": ps.token.address,
        "amount": intent.amount,
        "fee_amount": intent.fee_amount,
        "recipient": ps.recipient,
        "fee_recipient": ps.fee_recipient,
    }
    # the tokens went straight from the payer: two Transfer events, none via the contract
    transfers = ps.token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert [(t["args"]["receiver"], t["args"]["value"]) for t in transfers] == [
        (ps.recipient, net),
        (ps.fee_recipient, intent.fee_amount),
    ]


def test_erc20_payment_without_fee(ps: PaymentsSetup) -> None:
    intent = ps.token_intent(amount=40 * USDC, fee_amount=0, fee_recipient=ZERO)
    ps.fund_and_approve(intent.amount)
    native_before = ps.balances()[1:]
    ps.pay(intent)
    assert ps.balance(ps.recipient, ps.token) == 40 * USDC
    assert ps.balance(ps.payer, ps.token) == 0
    assert ps.balances()[1:] == native_before  # no native coin moved to anyone


def test_anyone_holding_the_intent_may_pay_it(ps: PaymentsSetup) -> None:
    """The intent names no payer: the caller pays, and Paid records who that was."""
    intent = ps.intent()
    receipt = ps.pay(intent, sender=ps.stranger)
    (event,) = ps.payments.events.Paid().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["payer"] == ps.stranger


def test_paid_events_filter_by_payment_id(ps: PaymentsSetup) -> None:
    start = ps.w3.eth.block_number + 1
    first, second = ps.intent(), ps.intent(amount=ETH)
    ps.pay(first)
    ps.pay(second)
    (log,) = ps.payments.events.Paid().get_logs(
        from_block=start, argument_filters={"payment_id": second.payment_id}
    )
    assert log["args"]["amount"] == ETH
    (raw,) = ps.w3.eth.get_logs(
        {
            "address": ps.payments.address,
            "fromBlock": start,
            "topics": [None, HexBytes(second.payment_id)],
        }
    )
    assert raw["topics"][0] == HexBytes(ps.payments.events.Paid().topic)
    assert raw["topics"][1:] == [
        HexBytes(second.payment_id),
        HexBytes(bytes(12) + bytes.fromhex(ps.payer[2:])),
        HexBytes(bytes(32)),  # token 0x0: native coin
    ]


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [-(2 * ETH), -1, 1, ETH])
def test_wrong_native_value_reverts(ps: PaymentsSetup, delta: int) -> None:
    intent = ps.intent(amount=2 * ETH)
    before = ps.balances()
    with reverts("Payments: wrong value"):
        ps.pay(intent, value=intent.amount + delta)
    assert not ps.used(intent)
    assert ps.balances() == before


def test_expired_deadline_reverts(ps: PaymentsSetup) -> None:
    intent = ps.intent(deadline=ps.now() + 60)
    signature = ps.sign(intent)
    ps.node.increase_time(120)
    ps.node.mine()
    before = ps.balances()
    with reverts("Payments: expired"):
        ps.pay(intent, signature)
    assert not ps.used(intent)
    assert ps.balances() == before


def test_replaying_a_paid_intent_reverts(ps: PaymentsSetup) -> None:
    intent = ps.intent()
    signature = ps.sign(intent)
    ps.pay(intent, signature)
    before = ps.balances()
    with reverts("Payments: id used"):
        ps.pay(intent, signature)
    with reverts("Payments: id used"):  # also from someone else
        ps.pay(intent, signature, sender=ps.stranger)
    # and a fresh, validly signed intent for the same id
    again = dataclasses.replace(intent, amount=ETH, recipient=ps.stranger)
    with reverts("Payments: id used"):
        ps.pay(again)
    assert ps.balances() == before


def test_an_intent_signed_by_another_key_reverts(ps: PaymentsSetup) -> None:
    intent = ps.intent()
    before = ps.balances()
    with reverts("Payments: bad signature"):
        ps.pay(intent, ps.sign(intent, key=ps.other_key))
    assert not ps.used(intent)
    assert ps.balances() == before


def test_an_intent_signed_for_another_contract_reverts(ps: PaymentsSetup) -> None:
    other = deploy.payments_contract(
        ps.w3, deploy.deploy_payments(ps.w3, ps.deployer, ps.owner, ps.signer.address)
    )
    intent = ps.intent()
    with reverts("Payments: bad signature"):
        ps.pay(intent, ps.sign(intent, contract=other))
    assert not ps.used(intent)


@pytest.mark.parametrize(
    "field",
    ["payment_id", "token", "amount", "recipient", "fee_amount", "fee_recipient", "deadline"],
)
def test_a_field_changed_under_a_valid_signature_reverts(ps: PaymentsSetup, field: str) -> None:
    intent = ps.intent()
    signature = ps.sign(intent)
    changes: dict[str, Any] = {
        "payment_id": new_payment_id(),
        "token": ps.token.address,
        "amount": intent.amount + 1,
        "recipient": ps.stranger,
        "fee_amount": intent.fee_amount + 1,
        "fee_recipient": ps.stranger,
        "deadline": intent.deadline + 1,
    }
    tampered = dataclasses.replace(intent, **{field: changes[field]})
    if tampered.token != NATIVE:
        ps.fund_and_approve(tampered.amount)
    before = ps.balances(ps.token)
    with reverts("Payments: bad signature"):
        ps.pay(tampered, signature)
    assert not ps.used(intent) and not ps.used(tampered)
    assert ps.balances(ps.token) == before
    ps.pay(intent, signature)  # the intent as signed still goes through


def test_a_high_s_signature_reverts(ps: PaymentsSetup) -> None:
    intent = ps.intent()
    signed = ps.signer.sign_typed_data(
        full_message=intent.typed_data(ps.node.chain_id, ps.payments.address)
    )
    twin_s, twin_v = SECP256K1_N - signed.s, 55 - signed.v  # 27 <-> 28
    twin = signed.r.to_bytes(32, "big") + twin_s.to_bytes(32, "big") + bytes([twin_v])

    # the twin is a valid signature for plain ecrecover (the precompile at 0x01)...
    precompile_input = (
        bytes(signed.message_hash)
        + twin_v.to_bytes(32, "big")
        + signed.r.to_bytes(32, "big")
        + twin_s.to_bytes(32, "big")
    )
    recovered = ps.w3.eth.call({"to": "0x" + "00" * 19 + "01", "data": precompile_input})
    assert Web3.to_checksum_address(recovered[12:]) == ps.signer.address

    # ...but the contract accepts only the low-s form
    before = ps.balances()
    with reverts("Payments: bad signature"):
        ps.pay(intent, twin)
    assert not ps.used(intent)
    assert ps.balances() == before
    ps.pay(intent, bytes(signed.signature))


@pytest.mark.parametrize("defect", ["v 0/1", "v 29", "64 bytes", "empty", "all zero"])
def test_a_malformed_signature_reverts(ps: PaymentsSetup, defect: str) -> None:
    intent = ps.intent()
    good = ps.sign(intent)
    bad = {
        "v 0/1": good[:64] + bytes([good[64] - 27]),
        "v 29": good[:64] + bytes([29]),
        "64 bytes": good[:64],
        "empty": b"",
        "all zero": bytes(64) + bytes([27]),  # ecrecover finds no address
    }[defect]
    with reverts("Payments: bad signature"):
        ps.pay(intent, bad)
    assert not ps.used(intent)


def test_value_sent_with_a_token_payment_reverts(ps: PaymentsSetup) -> None:
    intent = ps.token_intent()
    ps.fund_and_approve(intent.amount)
    before = ps.balances(ps.token)
    with reverts("Payments: value with token"):
        ps.pay(intent, value=1)
    with reverts("Payments: value with token"):
        ps.pay(intent, value=intent.amount)
    assert not ps.used(intent)
    assert ps.balances(ps.token) == before


def test_bad_intent_fields_revert(ps: PaymentsSetup) -> None:
    """Each is validly signed, so only the field's own check can refuse it."""
    cases = [
        ("Payments: amount is zero", ps.intent(amount=0, fee_amount=0)),
        ("Payments: fee > amount", ps.intent(amount=ETH, fee_amount=ETH + 1)),
        ("Payments: recipient is zero", ps.intent(recipient=ZERO)),
        ("Payments: fee recipient is zero", ps.intent(fee_recipient=ZERO)),
        ("Payments: token has no code", ps.intent(token=ps.stranger)),
    ]
    before = ps.balances()
    for message, intent in cases:
        with reverts(message):
            ps.pay(intent)
        assert not ps.used(intent)
    assert ps.balances() == before


def test_a_token_payment_without_allowance_reverts(ps: PaymentsSetup) -> None:
    intent = ps.token_intent()
    ps.send(ps.deployer, ps.token.functions.mint(ps.payer, intent.amount))
    ps.send(ps.payer, ps.token.functions.approve(ps.payments.address, intent.amount - 1))
    before = ps.balances(ps.token)
    with reverts("allowance too low"):
        ps.pay(intent)
    assert not ps.used(intent)  # the id marked used before the pull is rolled back
    assert ps.balances(ps.token) == before


# --- signer rotation ----------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["deployer", "payer", "stranger", "signer"])
def test_set_signer_only_by_owner(ps: PaymentsSetup, caller: str) -> None:
    who = ps.signer.address if caller == "signer" else getattr(ps, caller)
    with reverts("Payments: not owner"):
        ps.send(who, ps.payments.functions.set_signer(ps.other_key.address))
    assert ps.payments.functions.signer().call() == ps.signer.address


def test_set_signer_refuses_zero(ps: PaymentsSetup) -> None:
    with reverts("Payments: signer is zero"):
        ps.send(ps.owner, ps.payments.functions.set_signer(ZERO))


def test_after_set_signer_only_the_new_key_is_accepted(ps: PaymentsSetup) -> None:
    old_intent = ps.intent()
    old_signature = ps.sign(old_intent)  # signed before the rotation

    receipt = ps.send(ps.owner, ps.payments.functions.set_signer(ps.other_key.address))
    (event,) = ps.payments.events.SignerChanged().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {"old_signer": ps.signer.address, "new_signer": ps.other_key.address}
    assert ps.payments.functions.signer().call() == ps.other_key.address

    before = ps.balances()
    with reverts("Payments: bad signature"):
        ps.pay(old_intent, old_signature)
    with reverts("Payments: bad signature"):
        ps.pay(ps.intent())  # freshly signed by the old key
    assert not ps.used(old_intent)
    assert ps.balances() == before

    ps.pay(old_intent, ps.sign(old_intent, key=ps.other_key))
    assert ps.used(old_intent)


# --- hostile and odd tokens -------------------------------------------------------------


def test_token_returning_no_bool_works(ps: PaymentsSetup) -> None:
    odd = ps.deploy_test_contract("NoBoolToken")
    intent = ps.token_intent(token=odd.address, amount=50 * USDC, fee_amount=2 * USDC)
    ps.fund_and_approve(intent.amount, token=odd)
    ps.pay(intent)
    assert ps.balance(ps.recipient, odd) == 48 * USDC
    assert ps.balance(ps.fee_recipient, odd) == 2 * USDC
    assert ps.balance(ps.payer, odd) == 0
    assert ps.used(intent)


@pytest.mark.parametrize("fee_amount", [0, USDC])
def test_token_returning_false_is_refused(ps: PaymentsSetup, fee_amount: int) -> None:
    odd = ps.deploy_test_contract("FalseToken")
    intent = ps.token_intent(token=odd.address, amount=10 * USDC, fee_amount=fee_amount)
    ps.fund_and_approve(intent.amount, token=odd)
    ps.send(ps.deployer, odd.functions.set_fail_transfers(True))
    before = ps.balances(odd)
    with reverts("Payments: transferFrom failed"):
        ps.pay(intent)
    assert not ps.used(intent)
    assert ps.balances(odd) == before

    ps.send(ps.deployer, odd.functions.set_fail_transfers(False))
    ps.pay(intent)
    assert ps.balance(ps.recipient, odd) == intent.amount - fee_amount


def test_token_returning_false_on_the_fee_leg_reverts_the_whole_payment(
    ps: PaymentsSetup,
) -> None:
    """FalseToken returns false when the allowance is short: here only for the fee leg."""
    odd = ps.deploy_test_contract("FalseToken")
    intent = ps.token_intent(token=odd.address, amount=10 * USDC, fee_amount=USDC)
    ps.send(ps.deployer, odd.functions.mint(ps.payer, intent.amount))
    ps.send(ps.payer, odd.functions.approve(ps.payments.address, intent.amount - 1))
    before = ps.balances(odd)
    with reverts("Payments: transferFrom failed"):
        ps.pay(intent)
    assert not ps.used(intent)
    assert ps.balances(odd) == before


def test_fee_on_transfer_token_is_refused(ps: PaymentsSetup) -> None:
    odd = ps.deploy_test_contract("FalseToken")
    ps.send(ps.deployer, odd.functions.set_fee_bps(100))
    intent = ps.token_intent(token=odd.address, amount=100 * USDC, fee_amount=0)
    ps.fund_and_approve(intent.amount, token=odd)
    before = ps.balances(odd)
    with reverts("Payments: amount not received"):
        ps.pay(intent)
    assert not ps.used(intent)
    assert ps.balances(odd) == before


# --- reentrancy -------------------------------------------------------------------------


def _deploy_payments_owned_by(ps: PaymentsSetup, owner: str, source: str | None = None) -> Contract:
    """A Payments whose owner is ``owner``; from ``source`` (altered Payments.vy) if given."""
    if source is None:
        return deploy.payments_contract(
            ps.w3, deploy.deploy_payments(ps.w3, ps.deployer, owner, ps.signer.address)
        )
    import vyper

    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    factory = ps.w3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
    receipt = ps.send(ps.deployer, factory.constructor(owner, ps.signer.address))
    address = receipt["contractAddress"]
    assert address is not None
    return ps.w3.eth.contract(address=address, abi=out["abi"])


def _reenter_during_a_payment(ps: PaymentsSetup, route: str, source: str | None = None) -> tuple:
    """Pay an intent while ReentrantToken calls back into Payments.set_signer.

    ReentrantToken's hook carries at most 256 bytes of calldata, too few for a second
    ``pay`` (388 bytes); so it is made the contract's owner and tries to rotate the
    signer mid-payment. The lock is global: any reentry is refused alike. ``route``:
    "token" (it is the token, calling back from transferFrom) or "native" (it is the
    recipient, calling back when it receives the coin).
    """
    bad = ps.deploy_test_contract("ReentrantToken")
    payments = _deploy_payments_owned_by(ps, bad.address, source)
    rotate = payments.functions.set_signer(ps.other_key.address)._encode_transaction_data()
    ps.send(ps.deployer, bad.functions.arm(payments.address, rotate))
    if route == "token":
        intent = ps.token_intent(token=bad.address, amount=100 * USDC, fee_amount=USDC)
        ps.send(ps.deployer, bad.functions.mint(ps.payer, intent.amount))
        ps.send(ps.payer, bad.functions.approve(payments.address, intent.amount))
    else:
        intent = ps.intent(recipient=bad.address)
    ps.pay(intent, contract=payments)
    assert payments.functions.used(intent.payment_id).call()
    assert bad.functions.hook_calls().call() == 1
    return bad, payments, rotate, intent


@pytest.mark.parametrize("route", ["token", "native"])
def test_a_reentrant_call_during_a_payment_is_refused(ps: PaymentsSetup, route: str) -> None:
    bad, payments, rotate, intent = _reenter_during_a_payment(ps, route)
    assert bad.functions.hook_successes().call() == 0  # the reentrant call reverted
    assert payments.functions.signer().call() == ps.signer.address
    net = intent.amount - intent.fee_amount
    if route == "token":
        assert ps.balance(ps.recipient, bad) == net
    else:
        assert ps.balance(bad.address) == net

    # the same call outside a payment is allowed: only the reentrancy was refused
    ps.send(ps.deployer, bad.functions.execute(payments.address, rotate, 0))
    assert payments.functions.signer().call() == ps.other_key.address


def test_the_reentrancy_lock_is_what_stops_the_reentry(ps: PaymentsSetup) -> None:
    """Compiled without @nonreentrant, the reentrant call above goes through.

    This shows the test's hook really reaches the contract, so its failure there is the
    lock's doing and not an accident of the test contract.
    """
    source = PAYMENTS_SOURCE.read_text(encoding="utf-8").replace("@nonreentrant\n", "")
    bad, payments, _, _ = _reenter_during_a_payment(ps, "token", source)
    assert bad.functions.hook_successes().call() == 1
    assert payments.functions.signer().call() == ps.other_key.address
