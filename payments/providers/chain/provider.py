"""Payment providers for EVM chains: "chain" (a direct transfer, native coin or ERC-20, to the
platform's receiving address) and "escrow" (a deposit into the Escrow contract).

Both build the payer's instructions, verify a claimed transaction on chain, and refund. They
take and return the plain dataclasses of ``payments.providers.base``; the only database work
(platform-sent transactions and their nonces) is delegated to ``payments.escrow_services``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from common.errors import ValidationFailed
from common.money import amount_at_decimals, units_at_decimals
from payments.providers.base import (
    NOT_BOUND,
    FailureKind,
    Outcome,
    PaymentData,
    ProviderError,
    ProviderResult,
    ProviderUnavailableError,
    RefundData,
    SendRequest,
)
from payments.providers.chain import client as rpc
from payments.providers.chain.registry import Asset, ChainConfig, get_chain

logger = logging.getLogger(__name__)


def amount_to_base_units(amount: Decimal, decimals: int) -> int:
    """``orders.money.units_at_decimals`` (the one conversion), refusals as provider errors."""
    try:
        return units_at_decimals(amount, decimals, what=f"an asset with {decimals} decimals")
    except ValidationFailed as exc:
        raise ProviderError(exc.message, code=exc.code) from None


base_units_to_amount = amount_at_decimals


#: node and server clocks differ, and block timestamps are whole seconds: a transaction mined
#: up to this long before the payment's row was written still counts as made after it
CLOCK_SKEW = timedelta(seconds=120)
#: ``provider_data["scheme"]`` of a payment paid through the Payments contract
SCHEME_CONTRACT = "contract"
#: how long a payment intent is valid when the payment has no expiry of its own
INTENT_DEFAULT_LIFETIME = timedelta(hours=1)
#: The provider status of a mined transfer that pays less than the payment asks (beyond the
#: chain's tolerance): it never confirms, whatever its depth (the monitor skips it too).
UNDERPAID = "underpaid"


def payer_address(provider_data: dict[str, Any]) -> str:
    """The wallet a crypto payment is paid from, from its provider data (lowercase; "" for a
    payment recorded before payments named one)."""
    request = provider_data.get("request")
    payer = provider_data.get("payer_address") or (
        request.get("payer_address") if isinstance(request, dict) else None
    )
    return str(payer or "").lower()


def _chain(chain_id: int | None) -> ChainConfig:
    try:
        return get_chain(chain_id)
    except ValidationFailed as exc:
        raise ProviderError(exc.message, code=exc.code) from None


def _request(payment: PaymentData) -> dict[str, Any]:
    request = payment.details.get("request") or {}
    return request if isinstance(request, dict) else {}


def tx_request(to: str, value: int, data: str, description: str) -> dict[str, str]:
    return {
        "to": to,
        "value": str(value),
        "value_hex": hex(value),
        "data": data,
        "description": description,
    }


@dataclass(frozen=True)
class Checked:
    """A verified transaction: what it paid and where it sits."""

    sender: str
    received: int
    block_number: int | None
    block_hash: str
    confirmations: int
    gas_used: int | None
    effective_gas_price: int | None
    block_time: datetime | None = None


class _ChainBase:
    name = "chain"
    method = "crypto"

    # --- creating -------------------------------------------------------------------------
    def check_request(self, currency: str, details: dict[str, Any]) -> None:
        """Refuse, before anything is written, what ``create_payment`` would refuse: an
        unknown chain, or a currency the chain does not accept (``ValidationFailed``)."""
        get_chain(details.get("chain_id")).asset_for_currency(currency)

    def create_payment(self, payment: PaymentData) -> ProviderResult:
        request = _request(payment)
        chain = _chain(request.get("chain_id") or payment.chain_id)
        try:
            asset = chain.asset_for_currency(payment.currency)
        except ValidationFailed as exc:
            raise ProviderError(exc.message, code=exc.code) from None
        units = amount_to_base_units(payment.amount, asset.decimals)
        instructions: dict[str, Any] = {
            "chain_id": chain.chain_id,
            "currency": payment.currency,
            "token_address": asset.address,
            "decimals": asset.decimals,
            "amount_base_units": str(units),
            "amount": str(payment.amount),
            "expires_at": payment.expires_at.isoformat() if payment.expires_at else None,
            "required_confirmations": chain.required_confirmations,
        }
        fields: dict[str, Any] = {
            "chain_id": chain.chain_id,
            "token_address": asset.address or "",
            "amount_base_units": units,
            "required_confirmations": chain.required_confirmations,
        }
        data = self._instructions(payment, chain, asset, units, request, instructions, fields)
        return ProviderResult(
            Outcome.PENDING,
            reference=str(fields.get("escrow_id") or payment.payment_id),
            raw_status="awaiting_transaction",
            fields=fields,
            instructions=instructions,
            data={"instructions": instructions, **data},
        )

    def _instructions(
        self,
        payment: PaymentData,
        chain: ChainConfig,
        asset: Asset,
        units: int,
        request: dict[str, Any],
        instructions: dict[str, Any],
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        raise NotImplementedError

    def fetch_payment(self, payment: PaymentData) -> ProviderResult:
        if not payment.transaction_hash:
            return ProviderResult(Outcome.PENDING, raw_status="awaiting_transaction")
        return self.claim_transaction(payment, payment.transaction_hash, payment.chain_id)

    def cancel_payment(self, payment: PaymentData) -> ProviderResult:
        return ProviderResult(Outcome.CANCELLED, raw_status="cancelled")

    def fetch_refund(self, refund: RefundData) -> ProviderResult:
        # the monitor tracks refund transactions to their confirmations
        return ProviderResult(Outcome.PENDING, reference=refund.provider_reference or "")

    # --- claiming ---------------------------------------------------------------------------
    def claim_transaction(
        self, payment: PaymentData, transaction_hash: str, chain_id: int | None
    ) -> ProviderResult:
        chain = _chain(payment.chain_id)
        if chain_id is not None and int(chain_id) != chain.chain_id:
            raise ProviderError(
                f"The payment is on chain {chain.chain_id}, not {chain_id}.", code="wrong_chain"
            )
        client = rpc.client_for(chain.rpc_url)
        try:
            if client.chain_id() != chain.chain_id:
                raise ProviderError("The configured node serves another chain.", code="wrong_chain")
            tx, receipt, head = client.transaction_and_receipt(transaction_hash)
            block_time = None
            if receipt is not None:
                block = client.call("eth_getBlockByNumber", [receipt["blockNumber"], False])
                if block:
                    block_time = datetime.fromtimestamp(rpc.to_int(block["timestamp"]), tz=UTC)
        except (rpc.RpcError, rpc.RpcUnavailable) as exc:
            raise ProviderUnavailableError(str(exc)) from exc
        if payment.chain_payment_id and (receipt is None or bound_event(payment, receipt) is None):
            # Only the contract's event naming the payment pays it: whatever else the hash
            # is (unknown, in the pool, another payment's, a plain transfer), nothing is
            # recorded, so a claim can neither pay nor block anyone's payment. The monitor
            # finds the event when it is mined.
            return ProviderResult(Outcome.PENDING, raw_status=NOT_BOUND)
        if tx is None:
            raise ProviderError(
                "The node does not know this transaction.",
                code="transaction_not_found",
                kind=FailureKind.TRANSIENT,
            )
        return self.verify(chain, payment, transaction_hash, tx, receipt, head, block_time)

    def verify(
        self,
        chain: ChainConfig,
        payment: PaymentData,
        tx_hash: str,
        tx: dict[str, Any],
        receipt: dict[str, Any] | None,
        head: int,
        block_time: datetime | None = None,
    ) -> ProviderResult:
        """Check a transaction (and its receipt, once mined) against the payment."""
        if tx.get("chainId") is not None and rpc.to_int(tx["chainId"]) != chain.chain_id:
            raise ProviderError("The transaction is for another chain.", code="wrong_chain")
        if receipt is not None and rpc.to_int(receipt.get("status")) != 1:
            raise ProviderError("The transaction reverted.", code="transaction_reverted")
        if (
            block_time is not None
            and payment.created_at is not None
            and block_time < payment.created_at - CLOCK_SKEW
        ):
            raise ProviderError(
                "The transaction was mined before the payment was made.",
                code="transaction_predates_payment",
            )
        expected = int(payment.amount_base_units or 0)
        checked = self._check(chain, payment, tx, receipt, head)
        fields: dict[str, Any] = {
            "transaction_hash": tx_hash.lower(),
            "chain_id": chain.chain_id,
            "sender_address": checked.sender,
            "confirmations": checked.confirmations,
        }
        if receipt is not None:
            fields.update(
                block_number=checked.block_number,
                block_hash=checked.block_hash,
                gas_used=checked.gas_used,
                effective_gas_price=checked.effective_gas_price,
            )
        flags: list[tuple[str, dict[str, Any]]] = []
        difference = checked.received - expected
        off = receipt is not None and abs(difference) > chain.tolerance_base_units
        short = off and difference < 0
        if off:
            flags.append(
                (
                    "underpayment" if short else "overpayment",
                    {
                        "expected_base_units": str(expected),
                        "received_base_units": str(checked.received),
                        "difference_base_units": str(difference),
                        "tolerance_base_units": str(chain.tolerance_base_units),
                    },
                )
            )
        if (
            payment.method == "crypto"
            and not payment.chain_payment_id
            and not payer_address(payment.details)
        ):
            # recorded before payments named their wallet: nothing binds the sender
            flags.append(("payer_not_bound", {"sender_address": checked.sender}))
        paid_at = block_time or timezone.now()
        if payment.expires_at and paid_at > payment.expires_at:
            flags.append(
                (
                    "late_payment",
                    {"expires_at": payment.expires_at.isoformat(), "paid_at": paid_at.isoformat()},
                )
            )
        if receipt is None:
            outcome, raw = Outcome.PROCESSING, "in_mempool"
        elif short:
            # Less than the payment asks never pays the order, however deep: the payment waits,
            # flagged with the amounts, for staff (a 1-wei transfer once confirmed a 0.05 ETH
            # order).
            outcome, raw = Outcome.PROCESSING, UNDERPAID
        elif checked.confirmations >= chain.required_confirmations:
            outcome, raw = Outcome.SUCCEEDED, "confirmed"
        else:
            outcome, raw = Outcome.PROCESSING, "mined"
        return ProviderResult(
            outcome,
            reference=tx_hash.lower(),
            raw_status=raw,
            fields=fields,
            review_flags=flags,
            data={"claimed_at": payment.details.get("claimed_at") or timezone.now().isoformat()},
        )

    def _check(
        self,
        chain: ChainConfig,
        payment: PaymentData,
        tx: dict[str, Any],
        receipt: dict[str, Any] | None,
        head: int,
    ) -> Checked:
        raise NotImplementedError

    @staticmethod
    def _position(receipt: dict[str, Any] | None, head: int) -> dict[str, Any]:
        if receipt is None:
            return {
                "block_number": None,
                "block_hash": "",
                "confirmations": 0,
                "gas_used": None,
                "effective_gas_price": None,
            }
        return {
            "gas_used": None,
            "effective_gas_price": None,
            **rpc.mined_position(
                rpc.to_int(receipt["blockNumber"]), receipt["blockHash"], head, receipt
            ),
        }

    # --- refunds ----------------------------------------------------------------------------
    def refund(self, refund: RefundData) -> ProviderResult:
        """An escrow refund through the operator key; a crypto refund from the payout wallet,
        or (no payout key) left for support to send and record. The transaction is returned
        as a ``SendRequest``: the refund service records and broadcasts it."""
        payment = refund.payment
        chain = get_chain(payment.chain_id)
        units = asset_units(chain, payment.token_address, refund.amount)
        if payment.method == "escrow":
            if not chain.operator_key:
                raise ProviderError(
                    "No escrow operator key is configured.", code="operator_key_missing"
                )
            data = rpc.escrow_call_data("refund", str(payment.escrow_id), units)
            request = SendRequest(
                chain.chain_id, chain.operator_key, payment.contract_address, data, 0, "refund"
            )
            return ProviderResult(Outcome.PENDING, raw_status="send", send=request)
        if not chain.payout_key:
            return ProviderResult(Outcome.PENDING, raw_status="awaiting_manual_refund")
        if not payment.sender_address:
            raise ProviderError("The payer's address is unknown.", code="refund_address_unknown")
        if payment.token_address:
            to, value = payment.token_address, 0
            data = rpc.erc20_transfer_data(payment.sender_address, units)
        else:
            to, value, data = payment.sender_address, units, "0x"
        request = SendRequest(chain.chain_id, chain.payout_key, to, data, value, "payout")
        return ProviderResult(Outcome.PENDING, raw_status="send", send=request)


def asset_units(chain: ChainConfig, token_address: str | None, amount: Decimal) -> int:
    """``amount`` in base units of the chain's asset (the native coin without a token)."""
    asset = chain.asset_for_token(token_address or None)
    if asset is None:
        raise ProviderError("The payment's asset is not configured.", code="unsupported_currency")
    return amount_to_base_units(amount, asset.decimals)


class ChainProvider(_ChainBase):
    """A direct transfer of the native coin or an ERC-20 to the receiving address."""

    name = "chain"
    method = "crypto"

    def check_request(self, currency: str, details: dict[str, Any]) -> None:
        chain = get_chain(details.get("chain_id"))
        chain.asset_for_currency(currency)
        if chain.payment_contract:
            return
        if not chain.legacy_transfers:
            raise ValidationFailed(
                f"Chain {chain.chain_id} has no payment contract configured.",
                code="chain_not_configured",
                details={"chain_id": chain.chain_id},
            )
        if not details.get("payer_address"):  # the old way binds the sender's wallet
            raise ValidationFailed(
                "A crypto payment names the wallet it is paid from.",
                code="payer_address_required",
                details={"field": "payer_address"},
            )

    def _instructions(
        self,
        payment: PaymentData,
        chain: ChainConfig,
        asset: Asset,
        units: int,
        request: dict[str, Any],
        instructions: dict[str, Any],
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        if not chain.receiving_address:
            raise ProviderError(
                "No receiving address is configured for this chain.", code="chain_not_configured"
            )
        if chain.payment_contract:
            return self._contract_instructions(
                payment, chain, asset, units, request, instructions, fields
            )
        if not chain.legacy_transfers:
            raise ProviderError(
                f"Chain {chain.chain_id} has no payment contract configured.",
                code="chain_not_configured",
            )
        return self._legacy_instructions(
            payment, chain, asset, units, request, instructions, fields
        )

    def _contract_instructions(
        self,
        payment: PaymentData,
        chain: ChainConfig,
        asset: Asset,
        units: int,
        request: dict[str, Any],
        instructions: dict[str, Any],
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        """A call to the Payments contract carrying the operator's signed intent: it pays
        exactly ``units`` of the asset to the receiving address under the payment's own id
        before the payment expires, or reverts. ERC-20: ``approve`` first."""
        if not chain.operator_key:
            raise ProviderError(
                "No operator key signs payment intents on this chain.",
                code="chain_not_configured",
            )
        payer = ""
        if request.get("payer_address"):  # optional, informative: it decides nothing
            payer = str(request["payer_address"])
            problem = rpc.address_problem(payer)
            if problem:
                raise ProviderError(problem, code="invalid_payer_address")
            payer = payer.lower()
        contract = chain.payment_contract
        expires = payment.expires_at or timezone.now() + INTENT_DEFAULT_LIFETIME
        intent = rpc.PaymentIntent(
            payment_id="0x" + rpc.payment_id_for(payment.payment_id).hex(),
            token=asset.address or rpc.ZERO_ADDRESS,
            amount=units,
            recipient=chain.receiving_address,
            fee_amount=0,
            fee_recipient=rpc.ZERO_ADDRESS,
            deadline=int(expires.timestamp()),
        )
        signature = rpc.sign_intent(chain.operator_key, intent, chain.chain_id, contract)
        call = rpc.pay_call_data(intent, signature)
        fields.update(
            chain_payment_id=intent.payment_id, contract_address=contract, pay_to_address=contract
        )
        pay = f"pay {payment.amount} {asset.symbol} through the payment contract"
        if asset.is_native:
            requests_ = [tx_request(contract, units, call, pay)]
        else:
            requests_ = [
                tx_request(
                    str(asset.address),
                    0,
                    rpc.erc20_approve_data(contract, units),
                    f"approve the payment contract for {payment.amount} {asset.symbol}",
                ),
                tx_request(contract, 0, call, pay),
            ]
        if payer:
            for r in requests_:
                r["from"] = payer
        signed = {**intent.as_dict(), "signature": signature}
        instructions.update(
            scheme=SCHEME_CONTRACT,
            contract_address=contract,
            payment_id=intent.payment_id,
            intent=signed,
            transaction_requests=requests_,
        )
        data: dict[str, Any] = {"scheme": SCHEME_CONTRACT, "intent": signed}
        if chain.deposit_factory and chain.deposit_implementation:
            # for wallets that only send plain transfers: an address of this payment's own
            salt = "0x" + rpc.deposit_salt_for(payment.payment_id).hex()
            address = rpc.deposit_address_for(
                chain.deposit_factory, chain.deposit_implementation, bytes.fromhex(salt[2:])
            )
            fields["deposit_address"] = address
            instructions["deposit_address"] = address
            instructions["deposit"] = {
                "address": address,
                "description": f"or send exactly {payment.amount} {asset.symbol} to this "
                "address from any wallet, in one or more transfers",
            }
            data["deposit"] = {
                "salt": salt,
                "factory": chain.deposit_factory,
                "implementation": chain.deposit_implementation,
            }
        if payer:
            data["payer_address"] = payer
        return data

    def _legacy_instructions(
        self,
        payment: PaymentData,
        chain: ChainConfig,
        asset: Asset,
        units: int,
        request: dict[str, Any],
        instructions: dict[str, Any],
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        """A plain transfer to the receiving address, from the wallet the buyer names (a chain
        still migrating: ``legacy_transfers``)."""
        payer = str(request.get("payer_address") or "")
        if not payer:
            raise ProviderError(
                "A crypto payment names the wallet it is paid from.",
                code="payer_address_required",
            )
        problem = rpc.address_problem(payer)
        if problem:
            raise ProviderError(problem, code="invalid_payer_address")
        payer = payer.lower()
        to = chain.receiving_address
        fields["pay_to_address"] = to
        instructions["pay_to_address"] = to
        instructions["payer_address"] = payer
        if asset.is_native:
            requests_ = [tx_request(to, units, "0x", f"send {payment.amount} {asset.symbol}")]
        else:
            requests_ = [
                tx_request(
                    str(asset.address),
                    0,
                    rpc.erc20_transfer_data(to, units),
                    f"transfer {payment.amount} {asset.symbol}",
                )
            ]
        for r in requests_:
            r["from"] = payer
        instructions["transaction_requests"] = requests_
        return {"payer_address": payer}

    def _check(
        self,
        chain: ChainConfig,
        payment: PaymentData,
        tx: dict[str, Any],
        receipt: dict[str, Any] | None,
        head: int,
    ) -> Checked:
        if payment.chain_payment_id:
            return self._check_bound(chain, payment, receipt, head)
        to_us = (payment.pay_to_address or chain.receiving_address).lower()
        tx_to = rpc.norm_address(tx.get("to"))
        value = rpc.to_int(tx.get("value"))
        token = (payment.token_address or "").lower()
        transfers = [
            d
            for d in (rpc.decode_log(log) for log in (receipt or {}).get("logs", []))
            if d is not None and d.name == "Transfer"
        ]
        if not token:  # native coin
            if tx_to != to_us:
                # From the call data, not the receipt's logs: the same answer before and after
                # the transaction is mined.
                if rpc.erc20_transfer_recipient(tx.get("input") or tx.get("data")) == to_us:
                    raise ProviderError("The transfer paid a token, not ETH.", code="wrong_token")
                raise ProviderError("The transaction pays another address.", code="wrong_recipient")
            received = value
        elif receipt is None:  # not mined: check what the call data says
            if tx_to != token:
                code = "wrong_token" if tx_to == to_us else "wrong_recipient"
                raise ProviderError("The transaction does not pay the token.", code=code)
            if rpc.erc20_transfer_recipient(tx.get("input") or tx.get("data")) != to_us:
                raise ProviderError("No transfer to the receiving address.", code="wrong_recipient")
            received = 0
        else:
            ours = [t for t in transfers if t.args["to"] == to_us]
            if not ours:
                if tx_to == to_us and value > 0:
                    raise ProviderError("The transfer paid ETH, not the token.", code="wrong_token")
                raise ProviderError("No transfer to the receiving address.", code="wrong_recipient")
            matching = [t for t in ours if t.address == token]
            if not matching:
                raise ProviderError("The transfer paid another token.", code="wrong_token")
            received = sum(int(t.args["value"]) for t in matching)
        sender = rpc.norm_address(tx.get("from"))
        payer = payer_address(payment.details)
        if payer and sender != payer:
            raise ProviderError(
                "The transaction was not sent from the payment's wallet.", code="wrong_sender"
            )
        position = self._position(receipt, head)
        return Checked(sender=sender, received=received, **position)

    def _check_bound(
        self,
        chain: ChainConfig,
        payment: PaymentData,
        receipt: dict[str, Any] | None,
        head: int,
    ) -> Checked:
        """A Payments-contract payment: what its ``Paid`` event says, nothing else."""
        event = bound_event(payment, receipt or {})
        if event is None:
            raise ProviderError(
                "The transaction carries no payment for this payment's id.", code=NOT_BOUND
            )
        problem = paid_terms_problem(
            payment.token_address, payment.amount_base_units, payment.details, event.args
        )
        if problem:
            raise ProviderError(problem, code="binding_terms_mismatch")
        position = self._position(receipt, head)
        return Checked(sender=event.args["payer"], received=int(event.args["amount"]), **position)


def bound_event(payment: PaymentData, receipt: dict[str, Any]) -> rpc.DecodedLog | None:
    """The Payments contract's ``Paid`` event naming ``payment`` in a receipt's logs."""
    contract = (payment.contract_address or "").lower()
    for log in receipt.get("logs") or []:
        d = rpc.decode_log(log)
        if (
            d is not None
            and d.name == "Paid"
            and d.address == contract
            and d.args["payment_id"] == (payment.chain_payment_id or "").lower()
        ):
            return d
    return None


def paid_terms_problem(
    token_address: str | None,
    amount_base_units: Any,
    details: dict[str, Any],
    args: dict[str, Any],
) -> str | None:
    """The event names the payment's id; it must also pay the signed terms (it always does,
    unless the operator key signed other terms for the same id). Takes the payment's token,
    base units and provider data (what a payment row or ``PaymentData`` holds)."""
    intent = details.get("intent") or {}
    token = (token_address or "").lower() or rpc.ZERO_ADDRESS
    if args["token"] != token:
        return "The payment contract was paid in another asset."
    if int(args["amount"]) != int(amount_base_units or 0):
        return "The payment contract was paid another amount."
    if args["recipient"] != str(intent.get("recipient") or "").lower():
        return "The payment contract paid another recipient."
    return None


class EscrowProvider(_ChainBase):
    """A deposit into the chain's Escrow contract under the payment's escrow id."""

    name = "escrow"
    method = "escrow"

    def check_request(self, currency: str, details: dict[str, Any]) -> None:
        chain = get_chain(details.get("chain_id"))
        chain.asset_for_currency(currency)
        if chain.escrow_version >= 2 and not details.get("payer_address"):
            raise ValidationFailed(
                "An escrow names the wallet it is paid from.",
                code="payer_address_required",
                details={"field": "payer_address"},
            )

    def _instructions(
        self,
        payment: PaymentData,
        chain: ChainConfig,
        asset: Asset,
        units: int,
        request: dict[str, Any],
        instructions: dict[str, Any],
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        if not chain.escrow_contract:
            raise ProviderError(
                "No escrow contract is configured for this chain.", code="chain_not_configured"
            )
        seller = str(request.get("seller_address") or chain.receiving_address or "").lower()
        if not seller:
            raise ProviderError("No seller address for the escrow.", code="seller_address_missing")
        escrow_id = "0x" + rpc.escrow_id_for(payment.payment_id).hex()
        contract = chain.escrow_contract
        fields.update(escrow_id=escrow_id, contract_address=contract, pay_to_address=contract)
        instructions.update(escrow_id=escrow_id, contract_address=contract, seller_address=seller)
        data: dict[str, Any] = {"seller_address": seller, "escrow_version": chain.escrow_version}
        if chain.escrow_version >= 2:
            deposit = self._signed_deposit(payment, chain, asset, units, request, seller)
            instructions.update(
                escrow_version=2, payer_address=deposit["payer"], intent=deposit["intent"]
            )
            data.update(payer_address=deposit["payer"], intent=deposit["intent"])
            call = deposit["call"]
        else:
            call = rpc.escrow_deposit_data(escrow_id, seller, asset.address, units)
        self._deposit_requests(payment, asset, units, contract, call, instructions)
        return data

    def _signed_deposit(
        self,
        payment: PaymentData,
        chain: ChainConfig,
        asset: Asset,
        units: int,
        request: dict[str, Any],
        seller: str,
    ) -> dict[str, Any]:
        """EscrowV2: an intent the operator signs naming the payer (only that wallet can fund
        the id: no squatting), the seller, the token, the exact amount, the authorization
        expiry (after which the buyer may reclaim) and the deadline to deposit."""
        payer = str(request.get("payer_address") or "")
        problem = rpc.address_problem(payer) if payer else "An escrow names its payer's wallet."
        if problem:
            raise ProviderError(
                problem, code="invalid_payer_address" if payer else "payer_address_required"
            )
        if not chain.operator_key:
            raise ProviderError(
                "No escrow operator key is configured.", code="operator_key_missing"
            )
        expires = payment.expires_at or timezone.now() + INTENT_DEFAULT_LIFETIME
        intent = rpc.EscrowIntent(
            escrow_id="0x" + rpc.escrow_id_for(payment.payment_id).hex(),
            payer=payer.lower(),
            seller=seller,
            token=asset.address or rpc.ZERO_ADDRESS,
            amount=units,
            # counted from the last moment the deposit may come, so a late deposit never
            # lands after (or just before) it
            authorization_expiry=int(expires.timestamp()) + chain.escrow_authorization_seconds,
            deadline=int(expires.timestamp()),
        )
        signature = rpc.sign_escrow_intent(
            chain.operator_key, intent, chain.chain_id, chain.escrow_contract
        )
        return {
            "payer": payer.lower(),
            "intent": {**intent.as_dict(), "signature": signature},
            "call": rpc.escrow_v2_deposit_data(intent, signature),
        }

    def _deposit_requests(
        self,
        payment: PaymentData,
        asset: Asset,
        units: int,
        contract: str,
        deposit: str,
        instructions: dict[str, Any],
    ) -> None:
        if asset.is_native:
            requests_ = [tx_request(contract, units, deposit, "deposit into escrow")]
        else:
            requests_ = [
                tx_request(
                    str(asset.address),
                    0,
                    rpc.erc20_approve_data(contract, units),
                    f"approve the escrow contract for {payment.amount} {asset.symbol}",
                ),
                tx_request(contract, 0, deposit, "deposit into escrow"),
            ]
        payer = instructions.get("payer_address")
        if payer:
            for r in requests_:
                r["from"] = payer
        instructions["transaction_requests"] = requests_

    def _check(
        self,
        chain: ChainConfig,
        payment: PaymentData,
        tx: dict[str, Any],
        receipt: dict[str, Any] | None,
        head: int,
    ) -> Checked:
        contract = (payment.contract_address or chain.escrow_contract).lower()
        if rpc.norm_address(tx.get("to")) != contract:
            raise ProviderError(
                "The transaction is not a call to the escrow contract.", code="wrong_recipient"
            )
        received = 0
        if receipt is not None:
            deposits = [
                d
                for d in (rpc.decode_log(log) for log in receipt.get("logs", []))
                if d is not None
                and d.name == "Deposited"
                and d.address == contract
                and d.args["escrow_id"] == (payment.escrow_id or "").lower()
            ]
            if not deposits:
                raise ProviderError(
                    "The transaction made no deposit for this escrow.",
                    code="escrow_deposit_not_found",
                )
            problem = escrow_terms_problem(chain, payment, deposits[0].args)
            if problem:
                raise ProviderError(problem[1], code=problem[0])
            received = int(deposits[0].args["amount"])
        position = self._position(receipt, head)
        return Checked(sender=rpc.norm_address(tx.get("from")), received=received, **position)


def escrow_terms_problem(
    chain: ChainConfig, payment: PaymentData, args: dict[str, Any]
) -> tuple[str, str] | None:
    """Anyone may fund an unused id: a deposit counts only on the payment's own terms."""
    token = (payment.token_address or "").lower() or rpc.ZERO_ADDRESS
    if args["token"] != token:
        return "wrong_token", "The escrow was funded with another asset."
    seller = str(payment.details.get("seller_address") or "").lower()
    if seller and args["seller"] != seller:
        return "escrow_terms_mismatch", "The escrow names another seller."
    payer = str(payment.details.get("payer_address") or "").lower()
    if payer and args["buyer"] != payer:
        return "escrow_terms_mismatch", "The escrow was funded from another wallet."
    expected = int(payment.amount_base_units or 0)
    if abs(int(args["amount"]) - expected) > chain.tolerance_base_units:
        return "escrow_amount_mismatch", "The escrow holds another amount."
    return None
