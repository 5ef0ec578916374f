"""Deposit addresses: value arriving at a payment's own CREATE2 address pays that payment and
no other (docs/chain.md#deposit-addresses).

The monitor finds arrivals by blocks, not by payments: the native coin from each scanned
block's transactions, tokens from the accepted tokens' ``Transfer`` logs, both matched in
memory against the set of watched deposit addresses. Each arrival is a ``ChainDeposit`` row
(seen, final, or dropped by a reorg); a payment's state follows the sum of its deposits:
final and enough -> confirmed (any excess sent back to its sender); enough but not all final
-> processing; some -> partially_paid; none left after a reorg -> pending. What follows on
chain (the operator's sweep of the address, the payout wallet's excess return) is sent by its
own periodic job (``payments.send_deposit_followups``), a bounded number per run, once per
deposit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from common.db import insert_rows, update_rows
from payments.chain.apply import PassReport, apply_moves, in_chunks, monitor_actor
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
from payments.selectors import (
    payment_status_invalidate_many,
    payment_status_invalidate_on_commit,
)
from payments.services.bulk import Move
from payments.services.chain_tx import chain_prepare, chain_record
from payments.services.core import lock_payment, payment_flag, payment_transition
from payments.services.payments import payment_apply_result

logger = logging.getLogger(__name__)

P = PaymentStatus
D = ChainDeposit.Status
CT = ChainTransaction

#: how long a closed or paid payment's deposit address is still watched (money sent late to
#: it is recorded, and returned or flagged, instead of sitting unseen)
DEPOSIT_WATCH = timedelta(days=30)
#: blocks a pass reads at most while deposit addresses are watched: each is read whole, with
#: its transactions, beside every transfer of the accepted tokens in the range
DEPOSIT_SCAN_BLOCKS = 200
#: sweeps and excess returns sent per run of ``payments.send_deposit_followups`` (each is a
#: few RPC calls): bounded, the rest go in the next runs
FOLLOWUPS_PER_RUN = 50


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


def seen_heights(chain: ChainConfig) -> set[int]:
    """The blocks of deposits seen and not yet final: the pass re-reads their hashes (a
    deposit is final, or dropped, by its block's hash, not by reading the block again)."""
    if not chain.deposit_factory:
        return set()
    return set(
        ChainDeposit.objects.filter(chain_id=chain.chain_id, status=D.SEEN)
        .values_list("block_number", flat=True)
        .distinct()
    )


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


def fetch_blocks(
    client: rpc.ChainClient, start: int, to: int, watched: dict[str, UUID]
) -> dict[int, dict[str, Any] | None]:
    """Blocks ``start + 1 .. to`` with their transactions, in one batch, when deposit addresses
    are watched (no database access: the monitor runs it beside its applying)."""
    if not watched or to <= start:
        return {}
    return client.blocks_with_transactions(list(range(start + 1, to + 1)))


def native_arrivals(
    client: rpc.ChainClient,
    blocks: dict[int, dict[str, Any] | None],
    canonical: dict[int, str | None],
    watched: dict[str, UUID],
) -> list[Arrival]:
    """Native coin sent to a watched address by a transaction in ``blocks`` (from
    ``fetch_blocks``; receipts only for the few that match, to drop reverted ones)."""
    found: list[Arrival] = []
    for height, block in blocks.items():
        block_hash = str((block or {}).get("hash") or "").lower()
        if not block or canonical.get(height) not in (None, block_hash):
            # a node behind its peers, or a reorg between two reads: the pass fails and the
            # next one reads the range again (skipping it would move the cursor past it)
            raise rpc.RpcError("eth_getBlockByNumber", f"block {height} missing or changed")
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
    # A transaction to an address without code cannot fail once mined: only addresses already
    # swept (a forwarder deployed there, which runs on a transfer) need their receipts read.
    swept = set(
        ChainTransaction.objects.filter(
            purpose=CT.Purpose.SWEEP, payment_id__any=[a.payment_id for a in found]
        ).values_list("payment_id", flat=True)
    )
    check = [a for a in found if a.payment_id in swept]
    if check:
        receipts = client.receipts([a.transaction_hash for a in check])
        failed = {
            a.key
            for a in check
            if rpc.to_int((receipts.get(a.transaction_hash) or {}).get("status")) != 1
        }
        found = [a for a in found if a.key not in failed]
    return found


def apply_deposits(
    chain: ChainConfig,
    scan_from: int,
    to: int,
    final_to: int,
    canonical: dict[int, str | None],
    arrivals: list[Arrival],
    report: PassReport,
) -> None:
    """Record the pass's arrivals (read in blocks ``scan_from + 1 .. to``), drop what a reorg
    took away, finalise what is deep enough, then settle every payment whose deposits changed
    (each in its own savepoint)."""
    if not chain.deposit_factory:
        return
    by_key = {a.key: a for a in arrivals}
    changed: set[UUID] = set()
    with transaction.atomic():
        existing = {
            (d.transaction_hash, d.log_index): d
            for d in ChainDeposit.objects.select_for_update()
            .filter(
                chain_id=chain.chain_id,
                transaction_hash__any=sorted({a.transaction_hash for a in arrivals}),
            )
            .only("id", "payment_id", "transaction_hash", "log_index", "status", "block_hash")
        }
        new = [a for key, a in by_key.items() if key not in existing]
        insert_rows(
            ChainDeposit,
            [
                {
                    "payment_id": a.payment_id,
                    "chain_id": chain.chain_id,
                    "transaction_hash": a.transaction_hash,
                    "log_index": a.log_index,
                    "token_address": a.token_address,
                    "from_address": a.from_address,
                    "amount_base_units": a.amount,
                    "block_number": a.block_number,
                    "block_hash": a.block_hash,
                }
                for a in new
            ],
            ignore_conflicts=True,
        )
        changed |= {a.payment_id for a in new}
        for key, d in existing.items():
            a = by_key.get(key)
            if a is None:
                continue  # another log of the same transaction (a batch paying several)
            if d.status == D.DROPPED or d.block_hash != a.block_hash:
                # mined again (in another block) after a reorg: seen again, not yet final
                ChainDeposit.objects.filter(pk=d.pk).update(
                    status=D.SEEN, block_number=a.block_number, block_hash=a.block_hash
                )
                changed.add(d.payment_id)
        dropped, final = [], []
        seen = (
            ChainDeposit.objects.select_for_update()
            .filter(chain_id=chain.chain_id, status=D.SEEN)
            .values_list(
                "id", "payment_id", "transaction_hash", "log_index", "block_number", "block_hash"
            )
        )
        for pk, payment_id, tx_hash, log_index, block_number, block_hash in seen:
            arrival = by_key.get((tx_hash, log_index))
            position = (block_number, block_hash)
            if arrival is not None:  # seen again now: where it is now
                position = (arrival.block_number, arrival.block_hash)
            gone = (scan_from < block_number <= to and arrival is None) or canonical.get(
                position[0]
            ) not in (None, position[1])
            if gone:
                dropped.append(pk)
                changed.add(payment_id)
            elif position[0] <= final_to and (
                arrival is not None or canonical.get(position[0]) == position[1]
            ):
                final.append(pk)
                changed.add(payment_id)
        ChainDeposit.objects.filter(pk__any=dropped).update(status=D.DROPPED)
        ChainDeposit.objects.filter(pk__any=final).update(status=D.FINAL)
    report.deposits += len(new)
    # Settled from state, not only from this pass's changes: a pass that died after the
    # deposits committed and before the payments moved is made good by the next one.
    changed |= set(
        PaymentTransaction.objects.filter(
            Q(status__in=(*OPEN_STATES, P.EXPIRED), deposits__isnull=False)
            # paid through the contract, with deposits not yet sent back
            | Q(
                status__in=PAID_STATES,
                transaction_hash__isnull=False,
                deposits__status=D.FINAL,
                deposits__excess_base_units=0,
            ),
            chain_id=chain.chain_id,
            deposit_address__isnull=False,
        ).values_list("id", flat=True)
    )
    _settle_many(chain, changed)


def _settle_many(chain: ChainConfig, changed: set[UUID]) -> None:
    """Move every payment whose deposits changed: the plain moves (processing, partially
    paid, confirmed with nothing to flag) set-based, the rest one at a time (``_settle``)."""
    if not changed:
        return
    actor = monitor_actor(chain)
    deposits: dict[UUID, list[ChainDeposit]] = {payment_id: [] for payment_id in changed}
    for d in (
        ChainDeposit.objects.filter(payment_id__any=list(changed))
        .exclude(status=D.DROPPED)
        .defer("created_at", "updated_at")
        .order_by("block_number", "log_index")
    ):
        deposits[d.payment_id].append(d)
    moves: list[Move] = []
    slow: list[UUID] = []
    received: list[PaymentTransaction] = []
    for p in PaymentTransaction.objects.filter(pk__any=list(changed)).only(
        "id",
        "order_id",
        "status",
        "transaction_hash",
        "amount_base_units",
        "token_address",
        "expires_at",
        "received_base_units",
    ):
        v = _verdict(chain, p, deposits[p.id])
        plain = (
            v.transition in ("start_processing", "receive_part", "confirm")
            and not v.others
            and p.status in OPEN_STATES
            and not (v.transition == "confirm" and (v.late or v.excess))
        )
        fields: dict[str, Any] = {}
        if int(p.received_base_units) != v.final:
            if plain:  # written with the move
                fields["received_base_units"] = v.final
            else:
                p.received_base_units = v.final
                received.append(p)
        if plain:
            if v.transition == "confirm" and v.latest:
                fields["sender_address"] = v.latest.from_address
            moves.append(
                Move(
                    payment_id=p.id,
                    transition=v.transition,
                    raw_status=v.raw_status,
                    fields=fields,
                    details=v.details,
                )
            )
        elif v.transition or v.others or v.excess or v.flag:
            slow.append(p.id)
    if received:
        with transaction.atomic():
            update_rows(
                PaymentTransaction,
                ["received_base_units"],
                [(p.id, p.received_base_units) for p in received],
            )
            order_ids = sorted({str(p.order_id) for p in received})
            transaction.on_commit(  # payment-status shows what was received
                partial(payment_status_invalidate_many, order_ids), robust=True
            )

    def settle(payment_id: UUID) -> None:
        _settle(chain, payment_id, actor)

    apply_moves(chain, moves, lambda m: settle(m.payment_id))
    in_chunks(chain, sorted(slow, key=str), settle, lambda payment_id: [payment_id])


@dataclass(frozen=True)
class Verdict:
    """Where a payment's deposits put it (computed, not applied)."""

    final: int  # base units of its own asset in final deposits
    seen: int  # ... in final or shallow ones
    latest: ChainDeposit | None  # the newest final one
    ours: list[ChainDeposit]  # deposits of its own asset, oldest first
    others: list[ChainDeposit]  # deposits of another asset
    transition: str  # "" when it stays where it is
    raw_status: str
    late: bool  # confirming after the payment expired
    excess: bool  # more than the payment keeps is final
    flag: str  # a review reason to set, if any
    details: dict[str, str]


def _verdict(chain: ChainConfig, p: PaymentTransaction, deposits: list[ChainDeposit]) -> Verdict:
    token = (p.token_address or "").lower()
    ours = [d for d in deposits if d.token_address == token]
    final = sum(int(d.amount_base_units) for d in ours if d.status == D.FINAL)
    seen = sum(int(d.amount_base_units) for d in ours)
    amount = int(p.amount_base_units or 0)
    short = amount - chain.tolerance_base_units
    latest = next((d for d in reversed(ours) if d.status == D.FINAL), None)
    # paid (or being paid) through the contract: its Paid event holds the payment's position,
    # and whatever arrives at the deposit address too is paid twice, all of it to go back
    by_contract = bool(p.transaction_hash)
    transition, raw, flag = "", "", ""
    if by_contract:
        pass
    elif p.status in (*OPEN_STATES, P.EXPIRED) and final >= short and latest is not None:
        transition, raw = "confirm", "deposit_final"
    elif seen >= short:
        # enough, not all final yet (an expired payment stays so until then)
        if p.status in OPEN_STATES and p.status != P.PROCESSING:
            transition, raw = "start_processing", "deposit_seen"
    elif seen > 0:
        if p.status in OPEN_STATES and p.status != P.PARTIALLY_PAID:
            transition, raw = "receive_part", "deposit_partial"
        elif p.status == P.EXPIRED:
            flag = "late_partial_payment"  # not enough, after the payment expired: staff
    elif p.status in (P.PROCESSING, P.PARTIALLY_PAID):
        transition, raw = "back_to_pending", "deposit_dropped"
    keeps = _keeps(p, confirming=transition == "confirm")
    assigned = sum(int(d.excess_base_units) for d in ours)
    return Verdict(
        final=final,
        seen=seen,
        latest=latest,
        ours=ours,
        others=[d for d in deposits if d.token_address != token],
        transition=transition,
        raw_status=raw,
        late=bool(p.expires_at and timezone.now() > p.expires_at),
        excess=keeps is not None and final - keeps[0] - assigned > chain.tolerance_base_units,
        flag=flag,
        details={"received_base_units": str(final), "seen_base_units": str(seen)},
    )


def _settle(chain: ChainConfig, payment_id: UUID, actor: Any) -> None:
    """Move one payment to where its deposits put it, flagging what is unusual."""
    _, p = lock_payment(payment_id)
    deposits = list(p.deposits.exclude(status=D.DROPPED).order_by("block_number", "log_index"))
    v = _verdict(chain, p, deposits)
    if v.others:
        payment_flag(
            p,
            "wrong_asset_deposit",
            actor=actor,
            details={
                "deposits": [
                    {"transaction_hash": d.transaction_hash, "token_address": d.token_address}
                    for d in v.others
                ]
            },
        )
    if int(p.received_base_units) != v.final:
        PaymentTransaction.objects.filter(pk=p.pk).update(received_base_units=v.final)
        p.received_base_units = v.final
        payment_status_invalidate_on_commit(p.order_id)  # payment-status shows what arrived
    if v.transition == "confirm" and v.latest is not None:
        flags: list[tuple[str, dict[str, Any]]] = []
        if v.late and p.expires_at:
            flags.append(("late_payment", {"expires_at": p.expires_at.isoformat(), **v.details}))
        payment_apply_result(
            payment_id=p.id,
            actor=actor,
            result=ProviderResult(
                Outcome.SUCCEEDED,
                raw_status=v.raw_status,
                fields={"sender_address": v.latest.from_address},
                review_flags=flags,
                data={"paid_by": "deposit_address"},
            ),
            details=v.details | {"transaction_hash": v.latest.transaction_hash},
        )
        p.refresh_from_db()
    elif v.transition:
        _move(p, v.transition, v.raw_status, actor, v.details)
        if v.transition == "back_to_pending":
            payment_flag(p, "reorg", actor=actor, details=v.details)
    if v.flag:
        payment_flag(p, v.flag, actor=actor, details=v.details)
    _assign_excess(chain, p, v.ours, v.final, actor)


def _move(p: PaymentTransaction, name: str, raw: str, actor: Any, details: dict[str, Any]) -> None:
    p.provider_status = raw  # saved with the transition
    payment_transition(p, name, actor=actor, details=details | {"provider_status": raw})


def _keeps(p: PaymentTransaction, *, confirming: bool = False) -> tuple[int, str] | None:
    """What the payment keeps of its final deposits, in base units, and the review reason for
    the rest; None while it is open (nothing is excess yet). Paid through the contract: none
    (paid twice); paid by its deposits (or being confirmed by them now): its amount; cancelled
    or failed: none."""
    if p.status in PAID_STATES and p.transaction_hash:
        return 0, "paid_twice"
    if p.status in PAID_STATES or (confirming and not p.transaction_hash):
        return int(p.amount_base_units or 0), "overpayment"
    if p.status in (P.CANCELLED, P.FAILED):
        return 0, "paid_after_close"
    return None


def _assign_excess(
    chain: ChainConfig, p: PaymentTransaction, ours: list[ChainDeposit], final: int, actor: Any
) -> None:
    """What final deposits paid beyond what the payment keeps goes back to its senders: beyond
    the amount for a payment paid by its deposits, all of it for one paid through the contract
    (paid twice) or cancelled or failed. It is assigned to the final deposits newest first,
    each at most its own amount, so every sender gets back only what they sent; sent by
    ``deposit_followups``."""
    keeps = _keeps(p)
    if keeps is None:
        return
    kept, reason = keeps
    owed = final - kept - sum(int(d.excess_base_units) for d in ours)
    if owed <= chain.tolerance_base_units:
        return
    returned = []
    for d in reversed([d for d in ours if d.status == D.FINAL]):
        room = int(d.amount_base_units) - int(d.excess_base_units)
        part = min(room, owed)
        if part <= 0:
            continue
        ChainDeposit.objects.filter(pk=d.pk).update(
            excess_base_units=int(d.excess_base_units) + part
        )
        returned.append({"to": d.from_address, "base_units": str(part)})
        owed -= part
        if owed == 0:
            break
    payment_flag(
        p,
        reason,
        actor=actor,
        details={
            "expected_base_units": str(kept),
            "received_base_units": str(final),
            "returned": returned,
        },
    )


def deposit_followups(chain: ChainConfig, limit: int = FOLLOWUPS_PER_RUN) -> int:
    """Send what final deposits call for, at most ``limit`` transactions, each at most once
    per deposit (a unique row per deposit and purpose): the excess back to the sender from the
    payout wallet, and the operator's sweep of the address to the receiving address. Runs
    outside any database transaction (it talks to the node), apart from the chain's passes
    (their cost stays bounded by blocks). Returns how many were sent."""
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
