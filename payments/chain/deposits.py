"""Deposit addresses: value arriving at a payment's own CREATE2 address pays that payment and
no other (docs/chain.md#deposit-addresses).

The monitor finds arrivals by blocks, not by payments: the native coin from each scanned
block's transactions, tokens from the accepted tokens' ``Transfer`` logs, both matched in
memory against the set of watched deposit addresses. Each arrival is a ``ChainDeposit`` row
(seen, final, or dropped by a reorg); a payment's state follows the sum of its deposits:
final and enough -> confirmed (any excess sent back to its sender); enough but not all final
-> processing; some -> partially_paid; none left after a reorg -> pending. What follows on
chain (the operator's sweep of the address, the payout wallet's excess return) is sent after
the pass's transactions, a bounded number per pass, once per deposit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from payments.chain.apply import PassReport, in_chunks, monitor_actor
from payments.models import (
    OPEN_STATES,
    PAID_STATES,
    ChainDeposit,
    ChainTransaction,
    PaymentStatus,
    PaymentTransaction,
)
from payments.providers.base import Outcome, ProviderError, ProviderResult
from payments.providers.chain import client as rpc
from payments.providers.chain.registry import ChainConfig
from payments.services.chain_tx import chain_prepare, chain_record
from payments.services.core import lock_payment, payment_flag, payment_transition
from payments.services.payments import payment_apply_result
from payments.signals import announce, order_payments_changed

logger = logging.getLogger(__name__)

P = PaymentStatus
D = ChainDeposit.Status
CT = ChainTransaction

#: how long a closed or paid payment's deposit address is still watched (money sent late to
#: it is recorded, and returned or flagged, instead of sitting unseen)
DEPOSIT_WATCH = timedelta(days=30)
#: sweeps and excess returns sent per pass (each is a few RPC calls): bounded, so a pass's
#: cost does not grow with the number of payments; the rest go in the next passes
FOLLOWUPS_PER_PASS = 20


@dataclass(frozen=True)
class Arrival:
    """Value that reached a deposit address in a scanned block."""

    payment_id: UUID
    transaction_hash: str
    log_index: int  # -1: the transaction's own value
    token_address: str  # "" for the native coin
    from_address: str
    amount: int
    block_number: int
    block_hash: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.transaction_hash, self.log_index)


def watched_addresses(chain: ChainConfig) -> dict[str, UUID]:
    """{deposit address: payment id} for the addresses arrivals are looked for at."""
    if not chain.deposit_factory:
        return {}
    rows = PaymentTransaction.objects.filter(
        Q(status__in=(*OPEN_STATES, P.EXPIRED)) | Q(created_at__gte=timezone.now() - DEPOSIT_WATCH),
        chain_id=chain.chain_id,
        deposit_address__isnull=False,
    ).values_list("deposit_address", "id")
    return {str(address).lower(): payment_id for address, payment_id in rows}


def token_arrivals(transfers: Iterable[rpc.DecodedLog], watched: dict[str, UUID]) -> list[Arrival]:
    return [
        Arrival(
            payment_id=watched[d.args["to"]],
            transaction_hash=d.transaction_hash,
            log_index=d.log_index,
            token_address=d.address,
            from_address=d.args["from"],
            amount=int(d.args["value"]),
            block_number=d.block_number,
            block_hash=d.block_hash,
        )
        for d in transfers
        if d.args["to"] in watched and int(d.args["value"]) > 0
    ]


def native_arrivals(
    client: rpc.ChainClient,
    start: int,
    to: int,
    canonical: dict[int, str | None],
    watched: dict[str, UUID],
) -> list[Arrival]:
    """Native coin sent to a watched address by a transaction in blocks ``start + 1 .. to``
    (one batch of blocks; receipts only for the few that match, to drop reverted ones)."""
    if not watched or to <= start:
        return []
    found: list[Arrival] = []
    for height, block in client.blocks_with_transactions(list(range(start + 1, to + 1))).items():
        if not block:
            continue
        block_hash = str(block["hash"]).lower()
        if canonical.get(height) not in (None, block_hash):
            continue  # reorged between the two reads: the next pass reads it again
        for tx in block.get("transactions") or []:
            to_address = rpc.norm_address(tx.get("to"))
            value = rpc.to_int(tx.get("value"))
            if to_address in watched and value > 0:
                found.append(
                    Arrival(
                        payment_id=watched[to_address],
                        transaction_hash=str(tx["hash"]).lower(),
                        log_index=-1,
                        token_address="",
                        from_address=rpc.norm_address(tx.get("from")),
                        amount=value,
                        block_number=height,
                        block_hash=block_hash,
                    )
                )
    if found:
        receipts = client.receipts([a.transaction_hash for a in found])
        found = [
            a
            for a in found
            if rpc.to_int((receipts.get(a.transaction_hash) or {}).get("status")) == 1
        ]
    return found


def apply_deposits(
    chain: ChainConfig,
    start: int,
    to: int,
    final_to: int,
    canonical: dict[int, str | None],
    arrivals: list[Arrival],
    report: PassReport,
) -> None:
    """Record the pass's arrivals, drop what a reorg took away, finalise what is deep enough,
    then settle every payment whose deposits changed (each in its own savepoint)."""
    if not chain.deposit_factory:
        return
    by_key = {a.key: a for a in arrivals}
    changed: set[UUID] = set()
    with transaction.atomic():
        existing = {
            (d.transaction_hash, d.log_index): d
            for d in ChainDeposit.objects.select_for_update().filter(
                chain_id=chain.chain_id, transaction_hash__in={a.transaction_hash for a in arrivals}
            )
        }
        new = [
            ChainDeposit(
                payment_id=a.payment_id,
                chain_id=chain.chain_id,
                transaction_hash=a.transaction_hash,
                log_index=a.log_index,
                token_address=a.token_address,
                from_address=a.from_address,
                amount_base_units=a.amount,
                block_number=a.block_number,
                block_hash=a.block_hash,
            )
            for key, a in by_key.items()
            if key not in existing
        ]
        ChainDeposit.objects.bulk_create(new, ignore_conflicts=True)
        changed |= {a.payment_id for a in new}
        for key, d in existing.items():
            a = by_key[key]
            if d.status == D.DROPPED or d.block_hash != a.block_hash:
                # mined again (in another block) after a reorg: seen again, not yet final
                ChainDeposit.objects.filter(pk=d.pk).update(
                    status=D.SEEN, block_number=a.block_number, block_hash=a.block_hash
                )
                changed.add(d.payment_id)
        for d in ChainDeposit.objects.select_for_update().filter(
            chain_id=chain.chain_id, status=D.SEEN
        ):
            key = (d.transaction_hash, d.log_index)
            seen_now = key in by_key
            position = by_key[key] if seen_now else d
            gone = (start < d.block_number <= to and not seen_now) or canonical.get(
                position.block_number
            ) not in (None, position.block_hash)
            if gone:
                ChainDeposit.objects.filter(pk=d.pk).update(status=D.DROPPED)
                changed.add(d.payment_id)
            elif position.block_number <= final_to and (
                seen_now or canonical.get(position.block_number) == position.block_hash
            ):
                ChainDeposit.objects.filter(pk=d.pk).update(status=D.FINAL)
                changed.add(d.payment_id)
    report.deposits += len(new)
    actor = monitor_actor(chain)

    def settle(payment_id: UUID) -> None:
        _settle(chain, payment_id, actor)

    in_chunks(chain, sorted(changed, key=str), settle, lambda payment_id: [payment_id])


def _settle(chain: ChainConfig, payment_id: UUID, actor: Any) -> None:
    """Move one payment to where its deposits put it."""
    _, p = lock_payment(payment_id)
    deposits = list(p.deposits.exclude(status=D.DROPPED).order_by("block_number", "log_index"))
    token = (p.token_address or "").lower()
    ours = [d for d in deposits if d.token_address == token]
    others = [d for d in deposits if d.token_address != token]
    if others:
        payment_flag(
            p,
            "wrong_asset_deposit",
            actor=actor,
            details={
                "deposits": [
                    {"transaction_hash": d.transaction_hash, "token_address": d.token_address}
                    for d in others
                ]
            },
        )
    final = sum(int(d.amount_base_units) for d in ours if d.status == D.FINAL)
    seen = sum(int(d.amount_base_units) for d in ours)
    amount = int(p.amount_base_units or 0)
    short = amount - chain.tolerance_base_units
    if int(p.received_base_units) != final:
        PaymentTransaction.objects.filter(pk=p.pk).update(received_base_units=final)
        p.received_base_units = final
        order_id = p.order_id
        transaction.on_commit(  # payment-status shows what was received
            lambda: announce(order_payments_changed, sender=PaymentTransaction, order_id=order_id),
            robust=True,
        )
    latest = next((d for d in reversed(ours) if d.status == D.FINAL), None)
    details = {"received_base_units": str(final), "seen_base_units": str(seen)}
    if p.status in (*OPEN_STATES, P.EXPIRED) and final >= short and latest is not None:
        flags: list[tuple[str, dict[str, Any]]] = []
        if p.expires_at and timezone.now() > p.expires_at:
            flags.append(("late_payment", {"expires_at": p.expires_at.isoformat(), **details}))
        payment_apply_result(
            payment_id=p.id,
            actor=actor,
            result=ProviderResult(
                Outcome.SUCCEEDED,
                raw_status="deposit_final",
                fields={"sender_address": latest.from_address},
                review_flags=flags,
                data={"paid_by": "deposit_address"},
            ),
            details=details | {"transaction_hash": latest.transaction_hash},
        )
        p.refresh_from_db()
    elif seen >= short:
        # enough, not all final yet (an expired payment stays so until then)
        if p.status in OPEN_STATES and p.status != P.PROCESSING:
            _move(p, "start_processing", "deposit_seen", actor, details)
    elif seen > 0:
        if p.status in (*OPEN_STATES, P.EXPIRED) and p.status != P.PARTIALLY_PAID:
            _move(p, "receive_part", "deposit_partial", actor, details)
    elif p.status in (P.PROCESSING, P.PARTIALLY_PAID):
        _move(p, "back_to_pending", "deposit_dropped", actor, details)
        payment_flag(p, "reorg", actor=actor, details=details)
    _assign_excess(chain, p, ours, final, actor)


def _move(p: PaymentTransaction, name: str, raw: str, actor: Any, details: dict[str, Any]) -> None:
    PaymentTransaction.objects.filter(pk=p.pk).update(provider_status=raw)
    p.provider_status = raw
    payment_transition(p, name, actor=actor, details=details | {"provider_status": raw})


def _assign_excess(
    chain: ChainConfig, p: PaymentTransaction, ours: list[ChainDeposit], final: int, actor: Any
) -> None:
    """What final deposits paid beyond what the payment keeps goes back to its sender: beyond
    the amount for a paid payment, all of it for a cancelled or failed one. It is assigned to
    the newest final deposit (its sender gets it back) and sent by ``deposit_followups``."""
    if p.status in PAID_STATES:
        kept = int(p.amount_base_units or 0)
    elif p.status in (P.CANCELLED, P.FAILED):
        kept = 0
    else:
        return
    assigned = sum(int(d.excess_base_units) for d in ours)
    owed = final - kept - assigned
    if owed <= chain.tolerance_base_units:
        return
    newest = next(d for d in reversed(ours) if d.status == D.FINAL)
    ChainDeposit.objects.filter(pk=newest.pk).update(
        excess_base_units=int(newest.excess_base_units) + owed
    )
    reason = "overpayment" if kept else "paid_after_close"
    payment_flag(
        p,
        reason,
        actor=actor,
        details={
            "expected_base_units": str(kept),
            "received_base_units": str(final),
            "excess_base_units": str(owed),
            "returned_to": newest.from_address,
        },
    )


def deposit_followups(chain: ChainConfig, limit: int = FOLLOWUPS_PER_PASS) -> int:
    """Send what final deposits call for, at most ``limit`` transactions, each at most once
    per deposit (a unique row per deposit and purpose): the excess back to the sender from the
    payout wallet, and the operator's sweep of the address to the receiving address. Runs
    outside any database transaction (it talks to the node). Returns how many were sent."""
    if not chain.deposit_factory:
        return 0
    sent = 0
    excess = (
        ChainDeposit.objects.filter(
            chain_id=chain.chain_id, status=D.FINAL, excess_base_units__gt=0
        )
        .exclude(chain_transactions__purpose=CT.Purpose.EXCESS_RETURN)
        .select_related("payment")[:limit]
    )
    for d in excess:
        if not chain.payout_key:
            break  # flagged for staff when it was assigned; they return it by hand
        units = int(d.excess_base_units)
        if d.token_address:
            to, value, data = d.token_address, 0, rpc.erc20_transfer_data(d.from_address, units)
        else:
            to, value, data = d.from_address, units, "0x"
        sent += _send(chain, chain.payout_key, d, CT.Purpose.EXCESS_RETURN, to, data, value)
    if not chain.operator_key:
        return sent
    # Only once the payment is settled: after the first sweep a forwarder sits at the address
    # and a plain native transfer with exactly 21,000 gas to it fails, so a partly paid
    # payment's address stays empty of code until the rest has arrived.
    # One sweep moves everything at the address: it is keyed by the payment's newest final
    # deposit, and a payment is swept again only for a deposit newer than its last sweep's.
    swept_since = CT.objects.filter(
        payment_id=OuterRef("payment_id"), purpose=CT.Purpose.SWEEP, deposit_id__gte=OuterRef("pk")
    )
    newer = ChainDeposit.objects.filter(
        payment_id=OuterRef("payment_id"), status=D.FINAL, pk__gt=OuterRef("pk")
    )
    sweeps = (
        ChainDeposit.objects.filter(chain_id=chain.chain_id, status=D.FINAL)
        .exclude(payment__status__in=(*OPEN_STATES, P.EXPIRED))
        .exclude(Exists(swept_since))
        .exclude(Exists(newer))
        .select_related("payment")[: max(0, limit - sent)]
    )
    for d in sweeps:
        salt = str((d.payment.provider_data.get("deposit") or {}).get("salt") or "")
        if not salt:
            continue
        tokens = sorted(
            set(
                d.payment.deposits.exclude(token_address="")
                .exclude(status=D.DROPPED)
                .values_list("token_address", flat=True)
            )
        )
        data = rpc.sweep_call_data(salt, tokens)
        sent += _send(
            chain, chain.operator_key, d, CT.Purpose.SWEEP, chain.deposit_factory, data, 0
        )
    return sent


def _send(
    chain: ChainConfig, key: str, d: ChainDeposit, purpose: str, to: str, data: str, value: int
) -> int:
    try:
        prepared = chain_prepare(chain=chain, private_key=key, to=to, data=data, value=value)
        chain_record(prepared, payment_id=d.payment_id, purpose=purpose, deposit_id=d.pk)
    except IntegrityError:
        return 0  # another pass sent it: once per deposit
    except (ProviderError, rpc.RpcError, rpc.RpcUnavailable) as exc:
        logger.warning(
            "chain %s: %s for deposit %s not sent: %s", chain.chain_id, purpose, d.pk, exc
        )
        return 0
    return 1
