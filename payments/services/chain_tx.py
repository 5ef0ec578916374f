"""The transactions the platform sends on chain (escrow calls, refunds from the payout wallet):
prepared over RPC before any row lock, numbered under a lock per sender, signed locally,
recorded, and broadcast after the commit; the monitor follows them to their confirmations and
re-broadcasts what the node lost. Providers describe such a transaction (``SendRequest``);
only this module records and sends it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Max

from common.errors import ValidationFailed
from common.locks import xact_lock
from payments.models import ChainTransaction
from payments.providers.base import (
    Outcome,
    ProviderError,
    ProviderResult,
    ProviderUnavailableError,
    SendRequest,
)
from payments.providers.chain import client as rpc
from payments.providers.chain.registry import ChainConfig, get_chain

logger = logging.getLogger(__name__)
CT = ChainTransaction


# --- sending ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """A platform transaction with its network part done (gas, fees, the node's pending nonce),
    ready to be numbered, signed and recorded without any further RPC call."""

    chain: ChainConfig
    private_key: str
    sender: str
    to: str
    value: int
    tx: dict[str, Any]
    pending_nonce: int


def chain_prepare(
    *, chain: ChainConfig, private_key: str, to: str, data: str = "0x", value: int = 0
) -> Prepared:
    """The RPC part of sending: call it BEFORE taking row locks. A revert found by gas
    estimation raises ``ProviderError`` (``transaction_would_revert``); the node unreachable,
    ``RpcUnavailable``."""
    client = rpc.client_for(chain.rpc_url)
    sender = rpc.address_of_key(private_key)
    try:
        tx = client.prepare_transaction(
            sender, to=to, data=data, value=value, chain_id=chain.chain_id
        )
    except rpc.RpcError as exc:
        raise ProviderError(
            f"The contract refuses the call: {exc.error}", code="transaction_would_revert"
        ) from exc
    return Prepared(chain, private_key, sender, to, value, tx, client.pending_nonce(sender))


def chain_record(
    prepared: Prepared,
    *,
    payment_id: UUID,
    purpose: str,
    refund_id: UUID | None = None,
    deposit_id: int | None = None,
) -> ChainTransaction:
    """Number (the next nonce: the node's pending count read in ``chain_prepare`` or our last
    one + 1, under a lock per sender), sign locally and record a prepared transaction; it is
    broadcast after the commit (the monitor re-broadcasts what the node lost). No RPC here."""
    chain, sender = prepared.chain, prepared.sender
    with transaction.atomic():
        xact_lock(f"nonce:{chain.chain_id}:{sender}")
        stored = CT.objects.filter(chain_id=chain.chain_id, from_address=sender).aggregate(
            n=Max("nonce")
        )["n"]
        nonce = max(prepared.pending_nonce, -1 if stored is None else int(stored) + 1)
        tx_hash, raw = rpc.sign_prepared(prepared.private_key, prepared.tx, nonce)
        to, value = prepared.to, prepared.value
        sent = CT.objects.create(
            chain_id=chain.chain_id,
            purpose=purpose,
            payment_id=payment_id,
            refund_id=refund_id,
            deposit_id=deposit_id,
            from_address=sender,
            to_address=to.lower(),
            nonce=nonce,
            value_base_units=value,
            transaction_hash=tx_hash,
            raw_transaction=raw,
        )
        transaction.on_commit(lambda: chain_broadcast(sent.pk), robust=True)
    return sent


def chain_send(
    *,
    chain: ChainConfig,
    private_key: str,
    payment_id: UUID,
    purpose: str,
    to: str,
    data: str = "0x",
    value: int = 0,
    refund_id: UUID | None = None,
) -> ChainTransaction:
    """Prepare (RPC) and record (database) a platform transaction; broadcast after the commit.
    For callers holding no row lock (a refund sent after its row committed); under a lock use
    ``chain_prepare`` before taking it and ``chain_record`` inside."""
    prepared = chain_prepare(chain=chain, private_key=private_key, to=to, data=data, value=value)
    return chain_record(prepared, payment_id=payment_id, purpose=purpose, refund_id=refund_id)


def chain_broadcast(chain_transaction_id: int) -> None:
    """Send (or send again) a recorded transaction; errors leave it for the monitor."""
    sent = CT.objects.filter(pk=chain_transaction_id).first()
    if sent is None or not sent.raw_transaction or sent.status != CT.Status.SENT:
        return
    try:
        client = rpc.client_for(get_chain(sent.chain_id).rpc_url)
        client.send_raw(sent.raw_transaction)
    except rpc.RpcError as exc:
        if "known" not in str(exc.error).lower() and "nonce too low" not in str(exc.error).lower():
            logger.warning("broadcast of %s failed: %s", sent.transaction_hash, exc.error)
    except (rpc.RpcUnavailable, ValidationFailed) as exc:
        logger.warning("broadcast of %s failed: %s", sent.transaction_hash, exc)


def chain_send_request(
    request: SendRequest, *, payment_id: UUID, refund_id: UUID | None = None
) -> ProviderResult:
    """Record and (after the commit) broadcast what a provider asked to send; the result is
    pending with the transaction's hash as its reference."""
    try:
        sent = chain_send(
            chain=get_chain(request.chain_id),
            private_key=request.private_key,
            payment_id=payment_id,
            refund_id=refund_id,
            purpose=request.purpose,
            to=request.to,
            data=request.data,
            value=request.value,
        )
    except (rpc.RpcError, rpc.RpcUnavailable) as exc:
        raise ProviderUnavailableError(str(exc)) from exc
    return ProviderResult(Outcome.PENDING, reference=sent.transaction_hash, raw_status="sent")
