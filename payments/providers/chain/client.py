"""The JSON-RPC client for EVM chains: the only module (with the escrow contract's plain
helpers) that imports ``web3``.

Everything here speaks raw JSON-RPC (hex strings in, Python ints and lowercase hex out), batches
requests, and counts them: ``ChainClient.stats`` holds the HTTP requests and JSON-RPC calls
made, so tests and the monitor can report what a pass costs.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import function_signature_to_4byte_selector, keccak
from web3 import HTTPProvider, Web3

from payments.providers.escrow.artifacts import escrow_abi, load_artifact, payments_abi

#: JSON-RPC calls per HTTP request when batching
BATCH_SIZE = 1000
#: batches of full blocks sent at the same time (``blocks_with_transactions``)
BLOCK_REQUESTS = 4
#: tries of the pass's first read (head and finalized block) before the node counts as down
HEAD_READ_ATTEMPTS = 4
ZERO_ADDRESS = "0x" + "00" * 20


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error."""

    def __init__(self, method: str, error: Any) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error


class RpcUnavailable(RuntimeError):
    """The node could not be reached (connection error, timeout, 5xx)."""


@dataclass
class RpcStats:
    http_requests: int = 0
    rpc_calls: int = 0
    methods: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.http_requests = 0
        self.rpc_calls = 0
        self.methods.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "http_requests": self.http_requests,
            "rpc_calls": self.rpc_calls,
            "methods": dict(self.methods),
        }


class CountingHTTPProvider(HTTPProvider):
    """web3's HTTP provider, counting every HTTP request and every JSON-RPC call in it."""

    def __init__(self, *args: Any, stats: RpcStats, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stats = stats

    def make_request(self, method: Any, params: Any) -> Any:
        with _stats_lock:  # a pass reads blocks from a second thread
            self.stats.http_requests += 1
            self.stats.rpc_calls += 1
            self.stats.methods[str(method)] += 1
        return super().make_request(method, params)

    def make_batch_request(self, batch_requests: Any) -> Any:
        with _stats_lock:
            self.stats.http_requests += 1
            self.stats.rpc_calls += len(batch_requests)
            for method, _ in batch_requests:
                self.stats.methods[str(method)] += 1
        return super().make_batch_request(batch_requests)


_stats_lock = threading.Lock()


# --- hex helpers ----------------------------------------------------------------------------
def to_int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    return int(str(value), 16)


def hex_int(value: int) -> str:
    return hex(int(value))


def norm_address(value: Any) -> str:
    return str(value or "").lower()


def mined_position(
    block_number: int, block_hash: str, head: int, receipt: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Where a mined transaction sits: its block, its depth under ``head`` and, with its
    receipt, the gas it used (the payment fields the monitor and the providers store)."""
    position: dict[str, Any] = {
        "block_number": block_number,
        "block_hash": str(block_hash).lower(),
        "confirmations": max(0, head - block_number + 1),
    }
    if receipt:
        position["gas_used"] = to_int(receipt.get("gasUsed"))
        position["effective_gas_price"] = to_int(receipt.get("effectiveGasPrice"))
    return position


def address_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable EVM address (None when it is): 0x and 40 hex digits; a
    mixed-case address must carry a valid EIP-55 checksum (all lower or all upper case has
    none to check)."""
    text = str(value or "")
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", text):
        return "An address is 0x and 40 hex digits."
    digits = text[2:]
    if digits != digits.lower() and digits != digits.upper() and not Web3.is_checksum_address(text):
        return "The address's checksum (its mixed case) is wrong."
    return None


def topic_address(topic: str) -> str:
    return "0x" + topic[-40:].lower()


def address_topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


# keccak256(ESCROW_ID_DOMAIN || payment_uuid.bytes): changing it orphans every open escrow.
ESCROW_ID_DOMAIN = b"orderpay/escrow/v1:"


def escrow_id_for(payment_uuid: uuid.UUID) -> bytes:
    """The bytes32 escrow id of a payment: deterministic, and distinct per payment. Here, not
    in the deploy helpers, so the payment path never loads the deployment code."""
    return keccak(ESCROW_ID_DOMAIN + payment_uuid.bytes)


# keccak256(PAYMENT_ID_DOMAIN || payment_uuid.bytes): the id a Payments contract intent names.
PAYMENT_ID_DOMAIN = b"orderpay/payment/v1:"


def payment_id_for(payment_uuid: uuid.UUID) -> bytes:
    """The bytes32 id under which a payment is paid through the Payments contract."""
    return keccak(PAYMENT_ID_DOMAIN + payment_uuid.bytes)


# keccak256(DEPOSIT_SALT_DOMAIN || payment_uuid.bytes): the CREATE2 salt of a deposit address.
DEPOSIT_SALT_DOMAIN = b"orderpay/deposit/v1:"
# EIP-1167 minimal proxy creation code, as Vyper's create_minimal_proxy_to deploys it: a loader,
# then the runtime that delegates every call to the 20-byte implementation address
_PROXY_LOADER = bytes.fromhex("602d3d8160093d39f3")
_PROXY_PREFIX = bytes.fromhex("363d3d373d3d3d363d73")
_PROXY_SUFFIX = bytes.fromhex("5af43d82803e903d91602b57fd5bf3")


def deposit_salt_for(payment_uuid: uuid.UUID) -> bytes:
    return keccak(DEPOSIT_SALT_DOMAIN + payment_uuid.bytes)


def deposit_address_for(factory: str, implementation: str, salt: bytes) -> str:
    """The address the factory's forwarder for ``salt`` has (or will have): CREATE2 of the
    minimal proxy to ``implementation``. Value sent there before it is deployed waits for it."""
    init_code = (
        _PROXY_LOADER
        + _PROXY_PREFIX
        + bytes.fromhex(norm_address(implementation).removeprefix("0x"))
        + _PROXY_SUFFIX
    )
    digest = keccak(
        b"\xff" + bytes.fromhex(norm_address(factory).removeprefix("0x")) + salt + keccak(init_code)
    )
    return "0x" + digest[12:].hex()


def sweep_call_data(salt: str, tokens: list[str]) -> str:
    """``DepositFactory.sweep(salt, tokens)``: deploy the forwarder if needed and move its
    native balance and these tokens' balances to the receiving address."""
    return _call_data(
        "sweep(bytes32,address[])",
        ["bytes32", "address[]"],
        [
            bytes.fromhex(salt.removeprefix("0x")),
            [Web3.to_checksum_address(t) for t in tokens],
        ],
    )


# --- payment intents (EIP-712) ----------------------------------------------------------------
INTENT_DOMAIN_NAME = "OrderpayPayments"
INTENT_DOMAIN_VERSION = "1"
INTENT_FIELDS = (
    ("paymentId", "bytes32"),
    ("token", "address"),
    ("amount", "uint256"),
    ("recipient", "address"),
    ("feeAmount", "uint256"),
    ("feeRecipient", "address"),
    ("deadline", "uint256"),
)


@dataclass(frozen=True)
class PaymentIntent:
    """What the operator signs and the Payments contract's ``pay`` checks: the payer's call
    pays exactly this, to these recipients, before the deadline, once."""

    payment_id: str  # 0x + 64 hex
    token: str  # ZERO_ADDRESS: the native coin
    amount: int
    recipient: str
    fee_amount: int
    fee_recipient: str
    deadline: int  # unix seconds

    def values(self) -> list[Any]:
        return [
            bytes.fromhex(self.payment_id.removeprefix("0x")),
            Web3.to_checksum_address(self.token),
            self.amount,
            Web3.to_checksum_address(self.recipient),
            self.fee_amount,
            Web3.to_checksum_address(self.fee_recipient),
            self.deadline,
        ]

    def as_dict(self) -> dict[str, str]:
        """The intent as the API shows it (amounts as strings: JSON numbers lose digits)."""
        return {
            "payment_id": self.payment_id,
            "token": self.token,
            "amount": str(self.amount),
            "recipient": self.recipient,
            "fee_amount": str(self.fee_amount),
            "fee_recipient": self.fee_recipient,
            "deadline": str(self.deadline),
        }


def _typed_data(
    domain: tuple[str, str],
    chain_id: int,
    contract: str,
    primary: str,
    fields: tuple[tuple[str, str], ...],
    values: list[Any],
) -> dict[str, Any]:
    name, version = domain
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: [{"name": n, "type": t} for n, t in fields],
        },
        "primaryType": primary,
        "domain": {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": Web3.to_checksum_address(contract),
        },
        "message": dict(zip((n for n, _ in fields), values, strict=True)),
    }


def intent_typed_data(intent: PaymentIntent, chain_id: int, contract: str) -> dict[str, Any]:
    """The EIP-712 message of ``intent`` for the Payments contract at ``contract``."""
    return _typed_data(
        (INTENT_DOMAIN_NAME, INTENT_DOMAIN_VERSION),
        chain_id,
        contract,
        "PaymentIntent",
        INTENT_FIELDS,
        intent.values(),
    )


def _sign_typed(private_key: str, typed: dict[str, Any]) -> str:
    signed = Account.sign_message(encode_typed_data(full_message=typed), private_key)
    return "0x" + bytes(signed.signature).hex()


def sign_intent(private_key: str, intent: PaymentIntent, chain_id: int, contract: str) -> str:
    """The operator's signature of ``intent`` (r, s, v: 65 bytes, 0x hex), made locally."""
    return _sign_typed(private_key, intent_typed_data(intent, chain_id, contract))


ESCROW_INTENT_FIELDS = (
    ("escrowId", "bytes32"),
    ("payer", "address"),
    ("seller", "address"),
    ("token", "address"),
    ("amount", "uint256"),
    ("authorizationExpiry", "uint256"),
    ("deadline", "uint256"),
)


@dataclass(frozen=True)
class EscrowIntent:
    """What the operator signs for an EscrowV2 deposit: only ``payer`` may fund ``escrow_id``,
    for this seller, token and exact amount, before ``deadline``; the operator may release
    until ``authorization_expiry``, after which the buyer may reclaim."""

    escrow_id: str
    payer: str
    seller: str
    token: str
    amount: int
    authorization_expiry: int
    deadline: int

    def values(self) -> list[Any]:
        return [
            bytes.fromhex(self.escrow_id.removeprefix("0x")),
            Web3.to_checksum_address(self.payer),
            Web3.to_checksum_address(self.seller),
            Web3.to_checksum_address(self.token),
            self.amount,
            self.authorization_expiry,
            self.deadline,
        ]

    def as_dict(self) -> dict[str, str]:
        return {
            "escrow_id": self.escrow_id,
            "payer": self.payer,
            "seller": self.seller,
            "token": self.token,
            "amount": str(self.amount),
            "authorization_expiry": str(self.authorization_expiry),
            "deadline": str(self.deadline),
        }


def sign_escrow_intent(private_key: str, intent: EscrowIntent, chain_id: int, contract: str) -> str:
    typed = _typed_data(
        ("OrderpayEscrow", "2"),
        chain_id,
        contract,
        "EscrowIntent",
        ESCROW_INTENT_FIELDS,
        intent.values(),
    )
    return _sign_typed(private_key, typed)


def escrow_v2_deposit_data(intent: EscrowIntent, signature: str) -> str:
    """``EscrowV2.deposit(...)`` with the signed intent (the payer is the caller)."""
    values = intent.values()
    return _call_data(
        "deposit(bytes32,address,address,uint256,uint256,uint256,bytes)",
        ["bytes32", "address", "address", "uint256", "uint256", "uint256", "bytes"],
        [values[0], *values[2:], bytes.fromhex(signature.removeprefix("0x"))],
    )


PAY_SIGNATURE = "pay(bytes32,address,uint256,address,uint256,address,uint256,bytes)"
PAY_TYPES = ["bytes32", "address", "uint256", "address", "uint256", "address", "uint256", "bytes"]


def pay_call_data(intent: PaymentIntent, signature: str) -> str:
    """``Payments.pay(...)`` with the signed intent: what the payer's wallet sends."""
    return _call_data(
        PAY_SIGNATURE,
        PAY_TYPES,
        [*intent.values(), bytes.fromhex(signature.removeprefix("0x"))],
    )


# --- ABI encoding and log decoding ----------------------------------------------------------
def _selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


def _call_data(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (_selector(signature) + abi_encode(types, args)).hex()


def erc20_transfer_data(to: str, amount: int) -> str:
    return _call_data(
        "transfer(address,uint256)", ["address", "uint256"], [Web3.to_checksum_address(to), amount]
    )


def erc20_transfer_recipient(data: Any) -> str | None:
    """The recipient of an ERC-20 ``transfer(address,uint256)`` call, from its call data alone
    (so a verdict does not depend on whether the receipt is there yet); None for other data."""
    raw = data.hex() if isinstance(data, bytes | bytearray) else str(data or "")
    raw = raw.removeprefix("0x").lower()
    if len(raw) != 8 + 128 or raw[:8] != _selector("transfer(address,uint256)").hex():
        return None
    try:
        (to, _amount) = abi_decode(["address", "uint256"], bytes.fromhex(raw[8:]))
    except (DecodingError, ValueError):
        return None
    return norm_address(to)


def erc20_approve_data(spender: str, amount: int) -> str:
    return _call_data(
        "approve(address,uint256)",
        ["address", "uint256"],
        [Web3.to_checksum_address(spender), amount],
    )


def escrow_deposit_data(escrow_id: str, seller: str, token: str | None, amount: int) -> str:
    return _call_data(
        "deposit(bytes32,address,address,uint256)",
        ["bytes32", "address", "address", "uint256"],
        [
            bytes.fromhex(escrow_id.removeprefix("0x")),
            Web3.to_checksum_address(seller),
            Web3.to_checksum_address(token or ZERO_ADDRESS),
            amount,
        ],
    )


def escrow_call_data(function: str, escrow_id: str, *amounts: int) -> str:
    """release(id), refund(id, amount), dispute(id), resolve(id, buyer_amount, seller_amount)."""
    types = ["bytes32"] + ["uint256"] * len(amounts)
    signature = f"{function}({','.join(types)})"
    return _call_data(signature, types, [bytes.fromhex(escrow_id.removeprefix("0x")), *amounts])


def escrow_withdraw_data(token: str) -> str:
    """``EscrowV2.withdraw(token)``: the call a recipient sends to collect what is owed."""
    return _call_data("withdraw(address)", ["address"], [Web3.to_checksum_address(token)])


def _event_topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


TRANSFER_TOPIC = _event_topic("Transfer(address,address,uint256)")


def _contract_events() -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """The Escrow, EscrowV2 and Payments contracts' events by topic (the escrows' share names;
    where their signatures differ their topics do)."""
    events = {}
    for item in (*escrow_abi(), *load_artifact("EscrowV2").abi_list(), *payments_abi()):
        if item["type"] != "event":
            continue
        signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
        events[_event_topic(signature)] = (item["name"], item["inputs"])
    return events


CONTRACT_EVENTS = _contract_events()
PAID_TOPIC = next(t for t, (name, _) in CONTRACT_EVENTS.items() if name == "Paid")
#: EscrowV2's payout that could not be pushed (the recipient refused it): owed until withdrawn
PAYOUT_DEFERRED_TOPIC = next(
    t for t, (name, _) in CONTRACT_EVENTS.items() if name == "PayoutDeferred"
)
ESCROW_TOPICS = sorted(
    [t for t, (_, inputs) in CONTRACT_EVENTS.items() if inputs and inputs[0]["name"] == "escrow_id"]
    + [PAYOUT_DEFERRED_TOPIC]
)


def _decode_value(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return norm_address(value)
    if abi_type == "bytes32":
        return "0x" + bytes(value).hex()
    return value


_ZERO_PAD = bytes(12)


def _word(abi_type: str, word: bytes) -> Any:
    """One static ABI value from its 32-byte word, as strict as ``eth_abi`` (padding that is
    not zero, a value out of its type's range: ``ValueError``), without its per-value cost (a
    pass decodes thousands of logs)."""
    if len(word) != 32:
        raise ValueError("short word")
    if abi_type == "address":
        if word[:12] != _ZERO_PAD:
            raise ValueError("address padding")
        return "0x" + word[12:].hex()
    if abi_type == "bytes32":
        return "0x" + word.hex()
    if abi_type == "bool":
        value = int.from_bytes(word, "big")
        if value > 1:
            raise ValueError("bool out of range")
        return bool(value)
    if abi_type.startswith("uint"):
        value = int.from_bytes(word, "big")
        if value >> int(abi_type[4:] or 256):
            raise ValueError(f"{abi_type} out of range")
        return value
    raise TypeError(abi_type)  # not static: eth_abi decodes it


def _static(types: list[str]) -> bool:
    return all(t in ("address", "bytes32", "bool") or re.fullmatch(r"uint\d*", t) for t in types)


@dataclass(frozen=True)
class DecodedLog:
    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: str
    transaction_hash: str
    log_index: int
    removed: bool = False


def decode_log(log: dict[str, Any]) -> DecodedLog | None:
    """An Escrow or Payments event or an ERC-20 Transfer from a raw JSON-RPC log; None for
    anything else, malformed ones included (a contract may emit a ``Transfer`` topic with
    short data)."""
    try:
        return _decode_log(log)
    except (DecodingError, ValueError, TypeError, AttributeError):
        return None


def _decode_log(log: dict[str, Any]) -> DecodedLog | None:
    topics = [str(t).lower() for t in log.get("topics", [])]
    if not topics:
        return None
    data = bytes.fromhex(str(log.get("data", "0x")).removeprefix("0x"))
    if topics[0] == TRANSFER_TOPIC and len(topics) == 3:
        args: dict[str, Any] = {
            "from": topic_address(topics[1]),
            "to": topic_address(topics[2]),
            "value": _word("uint256", data[:32]),
        }
        name = "Transfer"
    elif topics[0] in CONTRACT_EVENTS:
        name, inputs = CONTRACT_EVENTS[topics[0]]
        indexed = [i for i in inputs if i["indexed"]]
        plain = [i for i in inputs if not i["indexed"]]
        if len(topics) != len(indexed) + 1:
            return None
        args = {}
        for item, topic in zip(indexed, topics[1:], strict=True):
            args[item["name"]] = _word(item["type"], bytes.fromhex(topic.removeprefix("0x")))
        types = [i["type"] for i in plain]
        if _static(types):
            if len(data) < 32 * len(types):
                return None
            values: Any = [_word(t, data[32 * n : 32 * n + 32]) for n, t in enumerate(types)]
        else:
            decoded = abi_decode(types, data)
            values = [_decode_value(t, v) for t, v in zip(types, decoded, strict=True)]
        for item, value in zip(plain, values, strict=True):
            args[item["name"]] = value
    else:
        return None
    return DecodedLog(
        name=name,
        args=args,
        address=norm_address(log.get("address")),
        block_number=to_int(log.get("blockNumber")),
        block_hash=str(log.get("blockHash") or "").lower(),
        transaction_hash=str(log.get("transactionHash") or "").lower(),
        log_index=to_int(log.get("logIndex")),
        removed=bool(log.get("removed")),
    )


def address_of_key(private_key: str) -> str:
    return norm_address(Account.from_key(private_key).address)


def sign_prepared(private_key: str, tx: dict[str, Any], nonce: int) -> tuple[str, str]:
    """Sign a prepared transaction with its nonce, locally (no network); (tx_hash, raw_tx)."""
    signed = Account.from_key(private_key).sign_transaction({**tx, "nonce": nonce})
    return "0x" + bytes(signed.hash).hex(), "0x" + bytes(signed.raw_transaction).hex()


# --- the client -----------------------------------------------------------------------------
class ChainClient:
    """Raw JSON-RPC to one node, with batching and request counting."""

    def __init__(self, rpc_url: str, *, timeout: float = 20.0) -> None:
        self.rpc_url = rpc_url
        self.stats = RpcStats()
        self.provider = CountingHTTPProvider(
            rpc_url, request_kwargs={"timeout": timeout}, stats=self.stats
        )
        self._chain_id: int | None = None

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        try:
            response = self.provider.make_request(method, params or [])
        except (requests.RequestException, OSError) as exc:
            raise RpcUnavailable(f"{method}: {type(exc).__name__}") from exc
        if "error" in response:
            raise RpcError(method, response["error"])
        return response.get("result")

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Results in the order of ``calls``; ``BATCH_SIZE`` calls per HTTP request."""
        results: list[Any] = []
        for start in range(0, len(calls), BATCH_SIZE):
            chunk = calls[start : start + BATCH_SIZE]
            try:
                responses = self.provider.make_batch_request(chunk)
            except (requests.RequestException, OSError) as exc:
                raise RpcUnavailable(f"batch: {type(exc).__name__}") from exc
            if isinstance(responses, dict):  # the whole batch was refused
                raise RpcError("batch", responses.get("error", responses))
            by_id = {r.get("id"): r for r in responses}
            ordered = sorted(by_id.values(), key=lambda r: r.get("id"))
            if len(ordered) != len(chunk):
                raise RpcError("batch", f"{len(ordered)} answers to {len(chunk)} calls")
            for (method, _), response in zip(chunk, ordered, strict=True):
                if "error" in response:
                    raise RpcError(method, response["error"])
                results.append(response.get("result"))
        return results

    # --- reads ------------------------------------------------------------------------------
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = to_int(self.call("eth_chainId"))
        return self._chain_id

    def block_number(self) -> int:
        return to_int(self.call("eth_blockNumber"))

    def head_and_finalized(self) -> tuple[int, int | None]:
        """The head and the node's ``finalized`` block number, in one request; the second is
        None where the chain does not serve the tag (an error for it alone is not one)."""
        calls = [("eth_blockNumber", []), ("eth_getBlockByNumber", ["finalized", False])]
        # a read with no effect, first in every pass: retried like web3 retries single reads
        # (a batch it does not), so a flaky node costs a pause, not the pass
        for attempt in range(HEAD_READ_ATTEMPTS):
            try:
                responses = self.provider.make_batch_request(calls)
                break
            except (requests.RequestException, OSError) as exc:
                if attempt == HEAD_READ_ATTEMPTS - 1:
                    raise RpcUnavailable(f"batch: {type(exc).__name__}") from exc
                time.sleep(0.125 * 2**attempt)
        if isinstance(responses, dict) or len(responses) != 2:
            raise RpcError("batch", responses)
        first, second = sorted(responses, key=lambda r: r.get("id"))
        if "error" in first:
            raise RpcError("eth_blockNumber", first["error"])
        head = to_int(first.get("result"))
        block = second.get("result") if "error" not in second else None
        if not isinstance(block, dict) or block.get("number") is None:
            return head, None
        return head, min(head, to_int(block["number"]))

    def block_headers(self, heights: list[int]) -> dict[int, tuple[str, int] | None]:
        """{height: (canonical block hash, timestamp) or None} for ``heights``, in one batch."""
        heights = sorted(set(heights))
        if not heights:
            return {}
        blocks = self.batch([("eth_getBlockByNumber", [hex_int(h), False]) for h in heights])
        return {
            h: ((str(b["hash"]).lower(), to_int(b.get("timestamp"))) if b else None)
            for h, b in zip(heights, blocks, strict=True)
        }

    def block_at_or_before(self, timestamp: int, probes: int = 16) -> int:
        """The highest block whose timestamp is at or before ``timestamp`` (0 if none): a
        search narrowing by ``probes`` per request (about six requests on a chain of tens of
        millions of blocks), as block timestamps only grow."""
        low, high = 0, self.block_number()
        while high - low > 1:
            step = max(1, (high - low) // probes)
            heights = sorted({*range(low + step, high, step), high})
            stamps = self.block_headers(heights)
            for h in heights:
                header = stamps.get(h)
                if header is None or header[1] > timestamp:
                    high = h
                    break
                low = h
            else:
                return high
        header = self.block_headers([high]).get(high)
        return high if header is not None and header[1] <= timestamp else low

    def blocks_with_transactions(
        self, heights: list[int], requests_at_once: int = BLOCK_REQUESTS
    ) -> dict[int, dict[str, Any] | None]:
        """{height: block with its full transactions, or None}: the heights split into at most
        ``requests_at_once`` batches sent at the same time (a node answers a batch's calls one
        after the other, and a block of thousands of transactions takes it a while: anvil
        serves 5,000 in about 1.2 s)."""
        heights = sorted(set(heights))
        if not heights:
            return {}
        size = -(-len(heights) // max(1, requests_at_once))
        groups = [heights[i : i + size] for i in range(0, len(heights), size)]

        def fetch(group: list[int]) -> list[Any]:
            return self.batch([("eth_getBlockByNumber", [hex_int(h), True]) for h in group])

        if len(groups) == 1:
            blocks = fetch(groups[0])
        else:
            with ThreadPoolExecutor(max_workers=len(groups)) as pool:
                blocks = [b for found in pool.map(fetch, groups) for b in found]
        return dict(zip(heights, blocks, strict=True))

    def block_hashes(self, heights: list[int]) -> dict[int, str | None]:
        """{height: canonical block hash or None} for ``heights``, in one batch."""
        return {h: (v[0] if v else None) for h, v in self.block_headers(heights).items()}

    def receipts(self, tx_hashes: list[str]) -> dict[str, dict[str, Any] | None]:
        hashes = sorted(set(tx_hashes))
        if not hashes:
            return {}
        found = self.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        return dict(zip(hashes, found, strict=True))

    def transactions(self, tx_hashes: list[str]) -> dict[str, dict[str, Any] | None]:
        hashes = sorted(set(tx_hashes))
        if not hashes:
            return {}
        found = self.batch([("eth_getTransactionByHash", [h]) for h in hashes])
        return dict(zip(hashes, found, strict=True))

    def transaction_and_receipt(
        self, tx_hash: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, int]:
        """The transaction, its receipt (None until mined) and the head, in one request."""
        tx, receipt, head = self.batch(
            [
                ("eth_getTransactionByHash", [tx_hash]),
                ("eth_getTransactionReceipt", [tx_hash]),
                ("eth_blockNumber", []),
            ]
        )
        return tx, receipt, to_int(head)

    def get_logs(
        self, from_block: int, to_block: int, filters: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """``eth_getLogs`` for each filter ({address, topics}) over one range, in one request
        (a filter's own ``fromBlock`` starts it later)."""
        if not filters or to_block < from_block:
            return []
        calls = [
            (
                "eth_getLogs",
                [{"fromBlock": hex_int(from_block), "toBlock": hex_int(to_block), **f}],
            )
            for f in filters
        ]
        logs: list[dict[str, Any]] = []
        for result in self.batch(calls):
            logs.extend(result or [])
        return logs

    def eth_call(self, to: str, data: str) -> str:
        return str(self.call("eth_call", [{"to": to, "data": data}, "latest"]))

    # --- sending (platform keys) ------------------------------------------------------------
    def pending_nonce(self, address: str) -> int:
        return to_int(self.call("eth_getTransactionCount", [address, "pending"]))

    def fees(self) -> tuple[int, int]:
        """(max_fee_per_gas, max_priority_fee_per_gas) from ``eth_feeHistory``: the median tip of
        the last 5 blocks, and twice the next base fee plus the tip."""
        history = self.call("eth_feeHistory", [hex_int(5), "latest", [50]])
        base_fees = [to_int(b) for b in history.get("baseFeePerGas") or ["0x0"]]
        tips = sorted(to_int(r[0]) for r in history.get("reward") or [] if r)
        tip = tips[len(tips) // 2] if tips else 0
        tip = max(tip, 1_000_000_000 // 1000)  # never zero: some nodes refuse it
        return 2 * base_fees[-1] + tip, tip

    def prepare_transaction(
        self, sender: str, *, to: str, data: str = "0x", value: int = 0, chain_id: int
    ) -> dict[str, Any]:
        """The network part of sending (no nonce yet): estimate gas (a revert raises
        ``RpcError``), take fees from fee history. Sign it with ``sign_prepared``."""
        gas = to_int(
            self.call(
                "eth_estimateGas",
                [{"from": sender, "to": to, "data": data, "value": hex_int(value)}],
            )
        )
        max_fee, tip = self.fees()
        return {
            "type": 2,
            "chainId": chain_id,
            "to": Web3.to_checksum_address(to),
            "value": value,
            "data": data,
            "gas": gas + gas // 5,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        }

    def sign_transaction(
        self,
        private_key: str,
        *,
        to: str,
        data: str = "0x",
        value: int = 0,
        nonce: int,
        chain_id: int,
    ) -> tuple[str, str]:
        """Estimate gas, take fees from fee history, sign; returns (tx_hash, raw_tx)."""
        sender = address_of_key(private_key)
        tx = self.prepare_transaction(sender, to=to, data=data, value=value, chain_id=chain_id)
        return sign_prepared(private_key, tx, nonce)

    def send_raw(self, raw_tx: str) -> str:
        return str(self.call("eth_sendRawTransaction", [raw_tx])).lower()


_clients: dict[str, ChainClient] = {}
_lock = threading.Lock()


def client_for(rpc_url: str) -> ChainClient:
    """One client (and one request counter) per RPC URL in this process."""
    with _lock:
        if rpc_url not in _clients:
            _clients[rpc_url] = ChainClient(rpc_url)
        return _clients[rpc_url]


def reset_clients() -> None:
    with _lock:
        _clients.clear()


def web3_for(rpc_url: str) -> Web3:
    """A plain web3 instance (for the deploy helpers of ``providers/escrow``)."""
    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))


def local_account(private_key: str) -> Any:
    """A signing account from a private key (never logged)."""
    return Account.from_key(private_key)
