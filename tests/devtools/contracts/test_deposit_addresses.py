"""Per-payment deposit addresses on a real anvil: DepositFactory and DepositForwarder.

Funds are sent to a counterfactual CREATE2 address before anything is deployed there; the
operator's sweep deploys an EIP-1167 proxy at it and sends everything to the receiver.
``create2_address`` below is the off-chain reference the application re-implements.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from eth_typing import ChecksumAddress
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt, Wei

from devtools.contracts import deploy
from payments.providers.escrow.artifacts import load_artifact
from tests.devtools.contracts.helpers import compiled_test_contract
from tests.peers.anvil import AnvilNode

pytestmark = pytest.mark.integration

ETH = 10**18
USDC = 10**6  # TestToken has 6 decimals
NATIVE = deploy.NATIVE_TOKEN
ZERO = deploy.NATIVE_TOKEN

DEPOSIT_SALT_DOMAIN = b"orderpay/deposit/v1:"

# The creation code of Vyper 0.4.3's `create_minimal_proxy_to`: a 9-byte loader
# (602d3d8160093d39f3: return the 45 bytes that follow) and the EIP-1167 runtime with
# the implementation's 20-byte address between PROXY_PREFIX and PROXY_SUFFIX.
# Note the loader differs from the one in EIP-1167's text (3d602d80600a3d3981f3).
PROXY_LOADER = bytes.fromhex("602d3d8160093d39f3")
PROXY_RUNTIME_PREFIX = bytes.fromhex("363d3d373d3d3d363d73")
PROXY_SUFFIX = bytes.fromhex("5af43d82803e903d91602b57fd5bf3")
PROXY_PREFIX = PROXY_LOADER + PROXY_RUNTIME_PREFIX

SWEPT_TOPIC = keccak(b"Swept(bytes32,address,address,uint256)")


def deposit_salt_for(payment_uuid: uuid.UUID) -> bytes:
    """The salt the application derives from a payment's uuid."""
    return keccak(DEPOSIT_SALT_DOMAIN + payment_uuid.bytes)


def new_salt() -> bytes:
    return deposit_salt_for(uuid.uuid4())


def _address_bytes(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address!r}")
    return raw


def proxy_init_code(implementation: str) -> bytes:
    """The 54-byte creation code of the proxy to ``implementation``."""
    return PROXY_PREFIX + _address_bytes(implementation) + PROXY_SUFFIX


def proxy_runtime_code(implementation: str) -> bytes:
    """The 45-byte code a deployed proxy to ``implementation`` has."""
    return PROXY_RUNTIME_PREFIX + _address_bytes(implementation) + PROXY_SUFFIX


def create2_address(factory: str, implementation: str, salt: bytes) -> str:
    """The deposit address for ``salt``: keccak256(0xff ++ factory ++ salt ++
    keccak256(init_code))[12:], as a checksum address."""
    if len(salt) != 32:
        raise ValueError("salt must be 32 bytes")
    digest = keccak(
        b"\xff" + _address_bytes(factory) + salt + keccak(proxy_init_code(implementation))
    )
    return Web3.to_checksum_address(digest[12:])


def reverts(match: str = "") -> pytest.RaisesExc[ContractLogicError]:
    return pytest.raises(ContractLogicError, match=match or None)


@dataclass
class DepositSetup:
    """DepositFactory and TestToken deployed on anvil, and who plays which part."""

    node: AnvilNode
    w3: Web3
    factory: Contract
    implementation: Contract
    token: Contract
    deployer: str
    owner: str
    operator: str
    buyer: str
    stranger: str
    receiver: ChecksumAddress  # a fresh address that never sends a transaction

    def send(self, sender: str, call: Any, value: int = 0) -> TxReceipt:
        return deploy.transact(self.w3, sender, call, value=value)

    def address(self, salt: bytes) -> ChecksumAddress:
        return Web3.to_checksum_address(self.factory.functions.deposit_address(salt).call())

    def forwarder(self, salt: bytes) -> Contract:
        """The deposit address with the forwarder's ABI (the proxy delegates to it)."""
        return self.w3.eth.contract(
            address=self.address(salt), abi=load_artifact("DepositForwarder").abi_list()
        )

    def code(self, address: str) -> bytes:
        return bytes(self.w3.eth.get_code(Web3.to_checksum_address(address)))

    def balance(self, who: str, token: Contract | None = None) -> int:
        if token is None:
            return int(self.w3.eth.get_balance(Web3.to_checksum_address(who)))
        return int(token.functions.balanceOf(Web3.to_checksum_address(who)).call())

    def pay_native(self, to: str, amount: int, gas: int | None = None) -> TxReceipt:
        """A plain transfer (no data) from the buyer; ``gas`` None lets the node estimate."""
        tx: dict[str, Any] = {"to": Web3.to_checksum_address(to), "value": amount}
        if gas is not None:
            tx["gas"] = gas
        return deploy.send_transaction(self.w3, self.buyer, tx)  # type: ignore[arg-type]

    def pay_token(self, to: str, amount: int, token: Contract | None = None) -> TxReceipt:
        """Mint ``amount`` to the buyer and send it with a plain ERC-20 transfer."""
        token = token or self.token
        self.send(self.deployer, token.functions.mint(self.buyer, amount))
        return self.send(self.buyer, token.functions.transfer(to, amount))

    def sweep(self, salt: bytes, tokens: Sequence[str] = (), sender: str = "") -> TxReceipt:
        call = self.factory.functions.sweep(salt, list(tokens))
        return self.send(sender or self.operator, call)

    def swept(self, receipt: TxReceipt) -> list[dict[str, Any]]:
        return [
            dict(e["args"])
            for e in self.factory.events.Swept().process_receipt(receipt, errors=DISCARD)
        ]

    def deployed(self, receipt: TxReceipt) -> list[dict[str, Any]]:
        events = self.factory.events.ForwarderDeployed().process_receipt(receipt, errors=DISCARD)
        return [dict(e["args"]) for e in events]

    def deploy_test_contract(self, name: str, *args: object) -> Contract:
        artifact = compiled_test_contract(name)
        address = deploy.deploy_contract(self.w3, self.deployer, artifact, *args)
        return self.w3.eth.contract(address=address, abi=artifact.abi_list())

    def deploy_factory(self, receiver: str, forwarder_code: bytes | None = None) -> Contract:
        return deploy_factory(
            self.w3, self.deployer, self.owner, self.operator, receiver, forwarder_code
        )


def forwarder_code() -> bytes:
    return bytes.fromhex(load_artifact("DepositForwarder").bytecode.removeprefix("0x"))


def deploy_factory(
    w3: Web3,
    deployer: str,
    owner: str,
    operator: str,
    receiver: str,
    code: bytes | None = None,
) -> Contract:
    artifact = load_artifact("DepositFactory")
    code = forwarder_code() if code is None else code
    address = deploy.deploy_contract(w3, deployer, artifact, owner, operator, receiver, code)
    return w3.eth.contract(address=address, abi=artifact.abi_list())


@pytest.fixture(scope="module")
def deposit_setup(anvil: AnvilNode) -> DepositSetup:
    """DepositFactory (owner = account 1, operator = account 2) and TestToken, once per module."""
    w3 = anvil.w3
    deployer, owner, operator, buyer, stranger = anvil.accounts[:5]
    receiver = Web3.to_checksum_address(keccak(b"orderpay test deposit receiver")[12:])
    factory = deploy_factory(w3, deployer, owner, operator, receiver)
    implementation = w3.eth.contract(
        address=factory.functions.implementation().call(),
        abi=load_artifact("DepositForwarder").abi_list(),
    )
    token = deploy.token_contract(w3, deploy.deploy_test_token(w3, deployer))
    return DepositSetup(
        node=anvil,
        w3=w3,
        factory=factory,
        implementation=implementation,
        token=token,
        deployer=deployer,
        owner=owner,
        operator=operator,
        buyer=buyer,
        stranger=stranger,
        receiver=receiver,
    )


@pytest.fixture
def ds(deposit_setup: DepositSetup) -> Iterator[DepositSetup]:
    """The deployed contracts, with the chain put back as it was after each test."""
    snapshot = deposit_setup.node.snapshot()
    try:
        yield deposit_setup
    finally:
        deposit_setup.node.revert(snapshot)


# --- deployment and the address derivation ------------------------------------------------


def test_deployed_state(ds: DepositSetup) -> None:
    factory, implementation = ds.factory, ds.implementation
    assert factory.functions.owner().call() == ds.owner
    assert factory.functions.operator().call() == ds.operator
    assert factory.functions.receiver().call() == ds.receiver
    assert implementation.functions.FACTORY().call() == factory.address
    assert implementation.functions.RECEIVER().call() == ds.receiver
    assert factory.functions.init_code_hash().call() == keccak(
        proxy_init_code(implementation.address)
    )

    # the implementation is the artifact's runtime code with its two immutables appended
    runtime = bytes.fromhex(load_artifact("DepositForwarder").bytecode_runtime[2:])
    code = ds.code(implementation.address)
    assert code[: len(runtime)] == runtime
    assert code[len(runtime) :] == (
        bytes(12) + _address_bytes(factory.address) + bytes(12) + _address_bytes(ds.receiver)
    )
    assert ds.balance(ds.receiver) == 0


def test_the_constructor_logs_the_first_operator(ds: DepositSetup) -> None:
    artifact = load_artifact("DepositFactory")
    constructor = ds.w3.eth.contract(abi=artifact.abi_list(), bytecode=artifact.bytecode)
    receipt = ds.send(
        ds.deployer, constructor.constructor(ds.owner, ds.operator, ds.receiver, forwarder_code())
    )
    (event,) = ds.factory.events.OperatorChanged().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {"old_operator": ZERO, "new_operator": ds.operator}


@pytest.mark.parametrize("zero", ["owner", "operator", "receiver"])
def test_constructor_refuses_a_zero_address(ds: DepositSetup, zero: str) -> None:
    args = {"owner": ds.owner, "operator": ds.operator, "receiver": ds.receiver}
    args[zero] = ZERO
    with reverts(f"DepositFactory: {zero} is zero"):
        deploy_factory(ds.w3, ds.deployer, args["owner"], args["operator"], args["receiver"])


@pytest.mark.parametrize("code", ["NoBoolToken", "empty"])
def test_constructor_refuses_code_that_is_not_a_forwarder(ds: DepositSetup, code: str) -> None:
    bytecode = b"" if code == "empty" else bytes.fromhex(compiled_test_contract(code).bytecode[2:])
    with reverts():
        ds.deploy_factory(ds.receiver, bytecode)


def test_init_code_template_is_what_vyper_deploys() -> None:
    from vyper.builtins.functions import eip1167_bytecode

    loader, runtime_pre, runtime_post = eip1167_bytecode()
    assert (loader, runtime_pre, runtime_post) == (
        PROXY_LOADER,
        PROXY_RUNTIME_PREFIX,
        PROXY_SUFFIX,
    )
    implementation = "0x" + "ab" * 20
    code = proxy_init_code(implementation)
    assert len(code) == 54 and len(proxy_runtime_code(implementation)) == 45
    assert code.hex() == (
        "602d3d8160093d39f3363d3d373d3d3d363d73" + "ab" * 20 + "5af43d82803e903d91602b57fd5bf3"
    )


def test_create2_address_against_a_known_vector() -> None:
    # computed independently: keccak256(0xff ++ factory ++ salt ++ keccak256(init_code))[12:]
    factory = "0x" + "11" * 20
    implementation = "0x" + "22" * 20
    salt = bytes(32)
    init_hash = keccak(proxy_init_code(implementation))
    expected = keccak(bytes([0xFF]) + bytes([0x11] * 20) + salt + init_hash)[-20:]
    assert create2_address(factory, implementation, salt) == Web3.to_checksum_address(expected)
    with pytest.raises(ValueError):
        create2_address(factory, implementation, b"short")


def test_deposit_address_matches_the_python_reference(ds: DepositSetup) -> None:
    salts = [bytes(32), b"\xff" * 32, new_salt(), deposit_salt_for(uuid.UUID(int=1))]
    addresses = set()
    for salt in salts:
        address = ds.address(salt)
        assert address == create2_address(ds.factory.address, ds.implementation.address, salt)
        assert ds.code(address) == b""
        addresses.add(address)
    assert len(addresses) == len(salts)


def test_another_factory_gives_other_addresses(ds: DepositSetup) -> None:
    other = ds.deploy_factory(ds.receiver)
    salt = new_salt()
    assert other.functions.deposit_address(salt).call() != ds.address(salt)


# --- sweeping -------------------------------------------------------------------------------


def test_native_sent_before_deployment_is_swept_to_the_receiver(ds: DepositSetup) -> None:
    salt = new_salt()
    address = ds.address(salt)
    amount = 3 * ETH + 7
    ds.pay_native(address, amount, gas=21_000)  # a plain transfer to an empty account
    assert ds.balance(address) == amount and ds.code(address) == b""

    receipt = ds.sweep(salt)

    assert ds.balance(ds.receiver) == amount
    assert ds.balance(address) == 0
    assert ds.balance(ds.factory.address) == 0
    assert ds.balance(ds.implementation.address) == 0
    assert ds.code(address) == proxy_runtime_code(ds.implementation.address)
    assert ds.deployed(receipt) == [{"salt": salt, "forwarder": address}]
    assert ds.swept(receipt) == [
        {"salt": salt, "forwarder": address, "token": NATIVE, "amount": amount}
    ]
    # the address the sweep deployed to is the reference address
    assert address == create2_address(ds.factory.address, ds.implementation.address, salt)


def test_swept_log_layout(ds: DepositSetup) -> None:
    salt = new_salt()
    address = ds.address(salt)
    ds.pay_native(address, 5)
    receipt = ds.sweep(salt)
    (log,) = [entry for entry in receipt["logs"] if entry["topics"][0] == SWEPT_TOPIC]
    assert log["address"] == ds.factory.address
    assert [bytes(t) for t in log["topics"]] == [
        SWEPT_TOPIC,
        salt,
        bytes(12) + _address_bytes(address),
        bytes(32),
    ]
    assert bytes(log["data"]) == (5).to_bytes(32, "big")


def test_token_sent_before_deployment_is_swept_to_the_receiver(ds: DepositSetup) -> None:
    salt = new_salt()
    address = ds.address(salt)
    amount = 125 * USDC + 1
    ds.pay_token(address, amount)
    assert ds.balance(address, ds.token) == amount and ds.code(address) == b""

    receipt = ds.sweep(salt, [ds.token.address])

    assert ds.balance(ds.receiver, ds.token) == amount
    assert ds.balance(address, ds.token) == 0
    assert ds.balance(ds.receiver) == 0
    assert ds.code(address) == proxy_runtime_code(ds.implementation.address)
    assert ds.swept(receipt) == [
        {"salt": salt, "forwarder": address, "token": ds.token.address, "amount": amount}
    ]


def test_native_and_tokens_in_one_sweep(ds: DepositSetup) -> None:
    salt = new_salt()
    address = ds.address(salt)
    no_bool = ds.deploy_test_contract("NoBoolToken")
    ds.pay_native(address, ETH)
    ds.pay_token(address, 40 * USDC)
    ds.send(ds.deployer, no_bool.functions.mint(address, 9))

    receipt = ds.sweep(salt, [ds.token.address, no_bool.address])

    assert ds.balance(ds.receiver) == ETH
    assert ds.balance(ds.receiver, ds.token) == 40 * USDC
    assert ds.balance(ds.receiver, no_bool) == 9
    assert (ds.balance(address), ds.balance(address, ds.token), ds.balance(address, no_bool)) == (
        0,
        0,
        0,
    )
    assert ds.swept(receipt) == [
        {"salt": salt, "forwarder": address, "token": NATIVE, "amount": ETH},
        {"salt": salt, "forwarder": address, "token": ds.token.address, "amount": 40 * USDC},
        {"salt": salt, "forwarder": address, "token": no_bool.address, "amount": 9},
    ]


def test_an_unlisted_token_stays_until_a_sweep_lists_it(ds: DepositSetup) -> None:
    salt = new_salt()
    address = ds.address(salt)
    ds.pay_native(address, 2 * ETH)
    ds.pay_token(address, 7 * USDC)

    first = ds.sweep(salt)
    assert ds.balance(address, ds.token) == 7 * USDC
    assert [e["token"] for e in ds.swept(first)] == [NATIVE]

    second = ds.sweep(salt, [ds.token.address])
    assert ds.balance(ds.receiver, ds.token) == 7 * USDC
    assert ds.swept(second) == [
        {"salt": salt, "forwarder": address, "token": ds.token.address, "amount": 7 * USDC}
    ]


def test_a_second_deposit_is_swept_by_a_second_sweep(ds: DepositSetup) -> None:
    salt = new_salt()
    address = ds.address(salt)
    ds.pay_native(address, ETH)
    ds.pay_token(address, 10 * USDC)
    first = ds.sweep(salt, [ds.token.address])
    assert len(ds.deployed(first)) == 1

    # the proxy is deployed now; a plain transfer runs its (payable) fallback
    receipt = ds.pay_native(address, ETH // 4 + 1)
    assert receipt["gasUsed"] > 21_000
    ds.pay_token(address, 3 * USDC + 5)
    assert ds.balance(address) == ETH // 4 + 1

    second = ds.sweep(salt, [ds.token.address])

    assert ds.deployed(second) == []
    assert ds.balance(ds.receiver) == ETH + ETH // 4 + 1
    assert ds.balance(ds.receiver, ds.token) == 13 * USDC + 5
    assert ds.balance(address) == ds.balance(address, ds.token) == 0
    assert ds.swept(second) == [
        {"salt": salt, "forwarder": address, "token": NATIVE, "amount": ETH // 4 + 1},
        {"salt": salt, "forwarder": address, "token": ds.token.address, "amount": 3 * USDC + 5},
    ]


def test_after_deployment_a_21000_gas_transfer_is_not_enough(ds: DepositSetup) -> None:
    salt = new_salt()
    address = ds.address(salt)
    ds.sweep(salt)
    assert ds.code(address) != b""
    needed = ds.w3.eth.estimate_gas({"from": ds.buyer, "to": address, "value": Wei(1)})
    assert needed > 21_000
    with pytest.raises(deploy.TransactionFailed):
        ds.pay_native(address, 1, gas=21_000)
    ds.pay_native(address, 1, gas=needed)
    assert ds.balance(address) == 1


def test_two_salts_two_addresses_and_one_sweep_moves_only_its_own(ds: DepositSetup) -> None:
    salt_a, salt_b = new_salt(), new_salt()
    a, b = ds.address(salt_a), ds.address(salt_b)
    assert a != b
    ds.pay_native(a, ETH)
    ds.pay_token(a, 5 * USDC)
    ds.pay_native(b, 2 * ETH)
    ds.pay_token(b, 6 * USDC)

    receipt = ds.sweep(salt_a, [ds.token.address])

    assert ds.balance(ds.receiver) == ETH
    assert ds.balance(ds.receiver, ds.token) == 5 * USDC
    assert (ds.balance(b), ds.balance(b, ds.token), ds.code(b)) == (2 * ETH, 6 * USDC, b"")
    assert {e["forwarder"] for e in ds.swept(receipt)} == {a}

    ds.sweep(salt_b, [ds.token.address])
    assert ds.balance(ds.receiver) == 3 * ETH
    assert ds.balance(ds.receiver, ds.token) == 11 * USDC
    assert ds.balance(b) == ds.balance(b, ds.token) == 0


def test_sweeping_an_empty_address_moves_nothing_and_logs_no_swept(ds: DepositSetup) -> None:
    salt = new_salt()
    address = ds.address(salt)

    first = ds.sweep(salt, [ds.token.address])
    assert ds.swept(first) == []
    assert ds.deployed(first) == [{"salt": salt, "forwarder": address}]
    assert ds.code(address) == proxy_runtime_code(ds.implementation.address)

    again = ds.sweep(salt, [ds.token.address])
    assert ds.swept(again) == [] and ds.deployed(again) == []
    assert ds.balance(ds.receiver) == ds.balance(ds.receiver, ds.token) == 0


# --- who may do what -----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "stranger", "buyer", "deployer"])
def test_only_the_operator_may_sweep(ds: DepositSetup, who: str) -> None:
    salt = new_salt()
    ds.pay_native(ds.address(salt), ETH)
    with reverts("DepositFactory: not operator"):
        ds.sweep(salt, sender=getattr(ds, who))
    assert ds.balance(ds.address(salt)) == ETH


def test_the_owner_rotates_the_operator(ds: DepositSetup) -> None:
    salt = new_salt()
    ds.pay_native(ds.address(salt), ETH)
    receipt = ds.send(ds.owner, ds.factory.functions.set_operator(ds.stranger))
    (event,) = ds.factory.events.OperatorChanged().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {"old_operator": ds.operator, "new_operator": ds.stranger}
    assert ds.factory.functions.operator().call() == ds.stranger

    with reverts("DepositFactory: not operator"):
        ds.sweep(salt)
    ds.sweep(salt, sender=ds.stranger)
    assert ds.balance(ds.receiver) == ETH


@pytest.mark.parametrize("who", ["operator", "stranger"])
def test_only_the_owner_sets_the_operator(ds: DepositSetup, who: str) -> None:
    with reverts("DepositFactory: not owner"):
        ds.send(getattr(ds, who), ds.factory.functions.set_operator(ds.stranger))


def test_the_operator_cannot_be_zero(ds: DepositSetup) -> None:
    with reverts("DepositFactory: operator is zero"):
        ds.send(ds.owner, ds.factory.functions.set_operator(ZERO))


@pytest.mark.parametrize("who", ["stranger", "operator", "owner", "buyer"])
def test_only_the_factory_may_flush_a_deployed_proxy(ds: DepositSetup, who: str) -> None:
    salt = new_salt()
    address = ds.address(salt)
    ds.sweep(salt)  # deploys the proxy
    ds.pay_native(address, ETH)
    ds.pay_token(address, USDC)
    forwarder = ds.forwarder(salt)
    assert forwarder.functions.FACTORY().call() == ds.factory.address
    assert forwarder.functions.RECEIVER().call() == ds.receiver

    with reverts("DepositForwarder: not factory"):
        ds.send(getattr(ds, who), forwarder.functions.flush([ds.token.address]))
    assert ds.balance(address) == ETH and ds.balance(address, ds.token) == USDC


def test_nobody_may_flush_the_implementation(ds: DepositSetup) -> None:
    with reverts("DepositForwarder: not factory"):
        ds.send(ds.stranger, ds.implementation.functions.flush([]))


def test_the_implementation_refuses_a_zero_receiver(ds: DepositSetup) -> None:
    with reverts("DepositForwarder: receiver is zero"):
        deploy.deploy_contract(ds.w3, ds.deployer, load_artifact("DepositForwarder"), ZERO)


# --- tokens and receivers that misbehave ---------------------------------------------------


def test_a_token_returning_false_makes_the_sweep_revert(ds: DepositSetup) -> None:
    false_token = ds.deploy_test_contract("FalseToken")
    salt = new_salt()
    address = ds.address(salt)
    ds.pay_native(address, ETH)
    ds.send(ds.deployer, false_token.functions.mint(address, 50))
    ds.send(ds.deployer, false_token.functions.set_fail_transfers(True))

    with reverts("DepositForwarder: transfer failed"):
        ds.sweep(salt, [false_token.address])
    # nothing happened, not even the deployment or the native part
    assert ds.code(address) == b""
    assert ds.balance(address) == ETH and ds.balance(address, false_token) == 50
    assert ds.balance(ds.receiver) == 0

    ds.send(ds.deployer, false_token.functions.set_fail_transfers(False))
    receipt = ds.sweep(salt, [false_token.address])
    assert ds.balance(ds.receiver, false_token) == 50 and ds.balance(ds.receiver) == ETH
    assert [e["amount"] for e in ds.swept(receipt)] == [ETH, 50]


def test_a_token_returning_nothing_is_swept(ds: DepositSetup) -> None:
    no_bool = ds.deploy_test_contract("NoBoolToken")
    salt = new_salt()
    address = ds.address(salt)
    ds.send(ds.deployer, no_bool.functions.mint(address, 77 * USDC))

    receipt = ds.sweep(salt, [no_bool.address])

    assert ds.balance(ds.receiver, no_bool) == 77 * USDC
    assert ds.balance(address, no_bool) == 0
    assert ds.swept(receipt) == [
        {"salt": salt, "forwarder": address, "token": no_bool.address, "amount": 77 * USDC}
    ]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("duplicate", "DepositFactory: token listed twice"),
        ("zero", "DepositFactory: token is zero"),
        ("no code", "DepositFactory: bad balanceOf"),
    ],
)
def test_a_bad_token_list_is_refused(ds: DepositSetup, case: str, message: str) -> None:
    salt = new_salt()
    ds.pay_token(ds.address(salt), USDC)
    token: str = ds.token.address
    lists: dict[str, list[str]] = {
        "duplicate": [token, token],
        "zero": [token, ZERO],
        "no code": [ds.stranger],
    }
    tokens = lists[case]
    with reverts(message):
        ds.sweep(salt, tokens)
    assert ds.balance(ds.address(salt), ds.token) == USDC


def test_more_than_eight_tokens_are_refused(ds: DepositSetup) -> None:
    tokens = [Web3.to_checksum_address(bytes([i + 1]) * 20) for i in range(9)]
    with reverts():
        ds.sweep(new_salt(), tokens)


def test_a_receiver_refusing_native_coin_makes_the_sweep_revert(ds: DepositSetup) -> None:
    refuser = ds.deploy_test_contract("NoBoolToken")  # no payable fallback
    factory = ds.deploy_factory(refuser.address)
    salt = new_salt()
    address = factory.functions.deposit_address(salt).call()
    ds.pay_native(address, ETH)
    ds.pay_token(address, USDC)

    with reverts():
        ds.send(ds.operator, factory.functions.sweep(salt, [ds.token.address]))
    assert ds.balance(address) == ETH and ds.balance(address, ds.token) == USDC


def test_a_reentrant_token_cannot_reenter_the_sweep(ds: DepositSetup) -> None:
    evil = ds.deploy_test_contract("ReentrantToken")  # owned by the deployer
    ds.send(ds.owner, ds.factory.functions.set_operator(evil.address))
    salt, other = new_salt(), new_salt()
    address, other_address = ds.address(salt), ds.address(other)
    ds.send(ds.deployer, evil.functions.mint(address, 10))
    ds.pay_native(other_address, ETH)
    # while the forwarder transfers it, the token (now the operator) sweeps another address
    reentry = ds.factory.functions.sweep(other, [])._encode_transaction_data()
    ds.send(ds.deployer, evil.functions.arm(ds.factory.address, reentry))
    outer = ds.factory.functions.sweep(salt, [evil.address])._encode_transaction_data()

    ds.send(ds.deployer, evil.functions.execute(ds.factory.address, outer, 0))

    assert evil.functions.hook_calls().call() == 1
    assert evil.functions.hook_successes().call() == 0  # the lock refused it
    assert ds.balance(ds.receiver, evil) == 10
    assert ds.balance(other_address) == ETH and ds.code(other_address) == b""


# --- gas ------------------------------------------------------------------------------------


def test_gas_of_a_first_and_a_later_sweep(ds: DepositSetup) -> None:
    """First sweep (deploy + flush) and a later one, each moving native coin and one token."""
    salt = new_salt()
    address = ds.address(salt)
    ds.pay_native(address, ETH)
    ds.pay_token(address, USDC)
    first = ds.sweep(salt, [ds.token.address])
    transfer = ds.pay_native(address, ETH)  # a plain transfer into the deployed proxy
    ds.pay_token(address, USDC)
    later = ds.sweep(salt, [ds.token.address])
    native_only = new_salt()
    ds.pay_native(ds.address(native_only), ETH)
    first_native = ds.sweep(native_only)

    print(
        f"\nsweep gas: first (native + token) {first['gasUsed']}, "
        f"later (native + token) {later['gasUsed']}, first (native only) {first_native['gasUsed']}"
        f"; a plain transfer into a deployed proxy {transfer['gasUsed']}"
    )
    assert 21_000 < transfer["gasUsed"] < 30_000
    assert first["gasUsed"] > later["gasUsed"]
    assert first["gasUsed"] < 150_000
    assert later["gasUsed"] < 100_000
