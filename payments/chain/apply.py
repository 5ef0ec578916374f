"""The chain monitor's apply pass: what the read pass found (mined, reorged, final, expired),
applied to payments, refunds and platform transactions in chunks, each chunk its own
transaction; every step is idempotent by the payment's own row, so a re-run never credits twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F
from django.db.models.fields.json import KT
from django.utils import timezone

from orders.audit import Actor
from payments.models import (
    OPEN_STATES,
    PAID_STATES,
    ChainTransaction,
    PaymentMethod,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    RefundStatus,
)
from payments.providers.base import Outcome, ProviderError, ProviderResult
from payments.providers.chain import client as rpc
from payments.providers.chain.provider import (
    CLOCK_SKEW,
    UNDERPAID,
    ChainProvider,
    EscrowProvider,
    base_units_to_amount,
    escrow_terms_problem,
    paid_terms_problem,
    payer_address,
)
from payments.providers.chain.registry import ChainConfig
from payments.services.bulk import Move, payments_move_many
from payments.services.chain_tx import chain_broadcast
from payments.services.core import lock_payment, payment_data, payment_flag, payment_transition
from payments.services.disputes import payment_close_dispute, payment_open_dispute
from payments.services.expiry import payment_expire
from payments.services.payments import payment_apply_result, payment_update_status
from payments.services.refunds import payment_refund, refund_apply_result
from payments.services.reviews import payment_flag_for_review

logger = logging.getLogger(__name__)


P = PaymentStatus


CT = ChainTransaction


CHAIN_METHODS = (PaymentMethod.CRYPTO, PaymentMethod.ESCROW)


WATCHED = (P.PENDING, P.PROCESSING, P.UNKNOWN, P.EXPIRED)


REBROADCAST_AFTER = timedelta(seconds=60)


#: how long a claimed transaction the node never showed (the payment expired) is still looked
#: for: one mined later is credited and flagged ``late_payment``
LATE_CLAIM_WATCH = timedelta(days=7)


#: payments applied per database transaction: each chunk commits on its own, the cursor with
#: the pass's last transaction (see ``_poll``)
CHUNK_SIZE = 2000


#: a Transfer found in the logs pays a payment created up to this long after its block's
#: timestamp (node and server clocks differ; block timestamps are whole seconds)
MATCH_CLOCK_SKEW = CLOCK_SKEW


T = TypeVar("T")


#: what a claimed transaction's mining sets on its payment (bulk-updated when nothing else moves)
POSITION_FIELDS = frozenset(
    {
        "transaction_hash",
        "chain_id",
        "sender_address",
        "block_number",
        "block_hash",
        "confirmations",
        "gas_used",
        "effective_gas_price",
    }
)


@dataclass
class PassReport:
    chain_id: int
    head: int | None = None
    from_block: int | None = None
    to_block: int | None = None
    cursor: int | None = None
    reorg_at: int | None = None
    #: set when the pass had no cursor: the first block it read
    backfill_from: int | None = None
    #: deposits and Paid events were read in blocks scan_from + 1 .. to_block (each block once)
    scan_from: int | None = None
    confirmed: int = 0
    moved_back: int = 0
    events: int = 0
    expired: int = 0
    #: unclaimed token payments found by their Transfer log, and transfers left to staff
    #: because more than one open payment could be the one they pay
    matched: int = 0
    ambiguous: int = 0
    #: new arrivals at deposit addresses
    deposits: int = 0
    #: seconds spent applying what was read (the database side of the pass), and in all
    apply_seconds: float = 0.0
    wall_seconds: float = 0.0
    http_requests: int = 0
    rpc_calls: int = 0
    methods: dict[str, int] = field(default_factory=dict)
    skipped: str = ""
    error: str = ""


def monitor_actor(chain: ChainConfig) -> Actor:
    return Actor.for_job("poll_chain", reference=f"chain:{chain.chain_id}")


def provider(method: str) -> ChainProvider | EscrowProvider:
    return EscrowProvider() if method == PaymentMethod.ESCROW else ChainProvider()


# --- the pass -----------------------------------------------------------------------------
def watched(chain: ChainConfig):  # type: ignore[no-untyped-def]
    return PaymentTransaction.objects.filter(
        chain_id=chain.chain_id, method__in=CHAIN_METHODS, status__in=WATCHED
    )


def in_chunks(
    chain: ChainConfig,
    items: Sequence[T],
    apply: Callable[[T], None],
    payment_ids: Callable[[T], Sequence[Any]],
) -> None:
    """Apply ``items`` in order, ``CHUNK_SIZE`` per database transaction, each item in its own
    savepoint. An item that raises (a domain error, a malformed event, a bug) rolls back alone:
    its payments (``payment_ids(item)``) are flagged ``monitor_error`` with the error for staff
    and the pass carries on, so one bad payment or event never stops the chain's monitor (the
    cursor still advances). Only a lost database connection ends the pass."""
    for offset in range(0, len(items), CHUNK_SIZE):
        with transaction.atomic():
            for item in items[offset : offset + CHUNK_SIZE]:
                try:
                    with transaction.atomic():
                        apply(item)
                except (OperationalError, InterfaceError):
                    raise
                except Exception as exc:
                    monitor_error(chain, apply.__name__, payment_ids(item), exc)


def monitor_error(
    chain: ChainConfig, step: str, payment_ids: Sequence[Any], exc: Exception
) -> None:
    logger.exception("chain %s: %s failed for %s", chain.chain_id, step, list(payment_ids))
    details = {"step": step, "error": f"{type(exc).__name__}: {exc}"[:500]}
    for payment_id in payment_ids:
        try:
            with transaction.atomic():
                payment_flag_for_review(
                    payment_id=payment_id,
                    reason="monitor_error",
                    actor=monitor_actor(chain),
                    details=details,
                )
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            logger.exception("chain %s: could not flag payment %s", chain.chain_id, payment_id)


def _savepoint_apply(payment_id: Any, result: ProviderResult, actor: Actor, **kw: Any) -> bool:
    """Apply a result; a transaction hash another payment holds flags this one instead.
    ``payment_apply_result`` is atomic itself: inside the pass's chunk it is a savepoint, which
    a unique-hash violation rolls back alone."""
    try:
        payment_apply_result(payment_id=payment_id, result=result, actor=actor, **kw)
        return True
    except IntegrityError:
        with transaction.atomic():
            _, payment = lock_payment(payment_id)
            payment_flag(
                payment,
                "transaction_hash_conflict",
                actor=actor,
                details={"transaction_hash": result.fields.get("transaction_hash")},
            )
        return False


def apply_reorg(
    chain: ChainConfig,
    report: PassReport,
    mined: list[PaymentTransaction],
    ct_mined: list[ChainTransaction],
    canonical: dict[int, str | None],
    changed: list[int],
    start: int,
) -> None:
    actor = monitor_actor(chain)

    def move_back(p: PaymentTransaction) -> None:
        now_hash = canonical.get(int(p.block_number or 0))
        payment_apply_result(
            payment_id=p.id,
            actor=actor,
            result=ProviderResult(
                Outcome.PENDING,
                raw_status="dropped_by_reorg",
                fields={"block_number": None, "block_hash": "", "confirmations": 0},
                review_flags=[
                    (
                        "reorg",
                        {
                            "block_number": p.block_number,
                            "old_block_hash": p.block_hash,
                            "new_block_hash": now_hash,
                            "transaction_hash": p.transaction_hash,
                        },
                    )
                ],
            ),
        )
        p.block_number = None
        report.moved_back += 1

    in_chunks(
        chain,
        [p for p in mined if canonical.get(int(p.block_number or 0)) != p.block_hash],
        move_back,
        lambda p: [p.id],
    )
    for t in ct_mined:
        if canonical.get(int(t.block_number or 0)) != t.block_hash:
            CT.objects.filter(pk=t.pk).update(
                status=CT.Status.SENT, block_number=None, block_hash=""
            )
    if changed and changed[0] <= start:
        # final blocks changed: confirmed payments cannot go back; staff look at them
        for p in PaymentTransaction.objects.filter(
            chain_id=chain.chain_id, status__in=PAID_STATES, block_number__gte=changed[0]
        ):
            with transaction.atomic():
                _, locked = lock_payment(p.id)
                payment_flag(locked, "deep_reorg", actor=actor, details={"reorg_at": changed[0]})


def apply_awaiting(
    chain: ChainConfig,
    head: int,
    awaiting: list[PaymentTransaction],
    found: dict[str, dict[str, Any] | None],
    report: PassReport,
) -> None:
    actor = monitor_actor(chain)
    now = timezone.now()

    def apply(p: PaymentTransaction) -> None:
        h = str(p.transaction_hash)
        tx, receipt = found.get(f"tx:{h}"), found.get(f"rc:{h}")
        if tx is None and receipt is None:
            claimed = p.provider_data.get("claimed_at") or p.updated_at.isoformat()
            try:
                claimed_at = timezone.datetime.fromisoformat(claimed)
            except ValueError:
                claimed_at = p.updated_at
            if p.status != P.EXPIRED and now - claimed_at > timedelta(
                seconds=chain.claim_timeout_seconds
            ):
                _give_up_claim(p, actor)
            return
        if tx is None or receipt is None:
            return  # still in the pool
        try:
            result = provider(p.method).verify(chain, payment_data(p), h, tx, receipt, head)
        except ProviderError as exc:
            if p.chain_payment_id:
                _binding_lost(p, h, exc, actor)
                return
            payment_apply_result(
                payment_id=p.id,
                actor=actor,
                result=ProviderResult(
                    Outcome.FAILED,
                    error_code=exc.code,
                    error_message=str(exc),
                    raw_status="invalid",
                ),
            )
            return
        if result.outcome == Outcome.SUCCEEDED:
            result.outcome, result.raw_status = Outcome.PROCESSING, "mined"  # confirm next pass
        if p.status == P.EXPIRED:  # given up on, mined after all: credited, and staff told
            result.review_flags.append(
                ("late_payment", {"transaction_hash": h, "reason": "mined after the claim expired"})
            )
        if _position_only(p, result):
            # already processing (claimed in the pool), nothing to flag: only where it was
            # mined changes. One conditional UPDATE: it applies only if the row is still as
            # read (else the next pass sees it again, through the service).
            watched(chain).filter(
                pk=p.pk, status=P.PROCESSING, transaction_hash=h, block_number__isnull=True
            ).update(**result.fields, provider_status=result.raw_status[:64], updated_at=now)
            return
        _savepoint_apply(p.id, result, actor)

    in_chunks(chain, awaiting, apply, lambda p: [p.id])


def _binding_lost(p: PaymentTransaction, tx_hash: str, exc: ProviderError, actor: Actor) -> None:
    """A payment bound on chain whose paying transaction, mined again after a reorg, no longer
    pays it (it reverted, say: the intent's deadline passed). Nothing was paid: the payment
    waits again, without the hash, flagged for staff; its intent still pays it until the
    deadline."""
    payment_apply_result(
        payment_id=p.id,
        actor=actor,
        result=ProviderResult(
            Outcome.PENDING,
            raw_status="binding_lost",
            fields={
                "transaction_hash": None,
                "sender_address": "",
                "block_number": None,
                "block_hash": "",
                "confirmations": 0,
            },
            review_flags=[("binding_lost", {"transaction_hash": tx_hash, "error": exc.code})],
        ),
    )


def _give_up_claim(p: PaymentTransaction, actor: Actor) -> None:
    """A claimed transaction the node never showed within the claim timeout: the payment
    expires (not fails) and keeps its hash, so the monitor goes on looking for it for
    ``LATE_CLAIM_WATCH``; money mined late is still credited (flagged ``late_payment``). A
    payment in ``unknown`` cannot expire: it fails as before."""
    if p.status == P.UNKNOWN:
        payment_apply_result(
            payment_id=p.id,
            actor=actor,
            result=ProviderResult(
                Outcome.FAILED,
                raw_status="never_seen",
                error_code="transaction_not_found",
                error_message="The claimed transaction never appeared on chain.",
            ),
        )
        return
    payment_update_status(
        payment_id=p.id,
        status=P.EXPIRED,
        actor=actor,
        reason="claimed transaction never seen on chain",
        details={"transaction_hash": p.transaction_hash, "provider_status": "never_seen"},
    )


def _position_only(p: PaymentTransaction, result: ProviderResult) -> bool:
    """Would ``payment_apply_result`` only record fields? (no transition, no flag, no new
    provider data, and only fields a mined transaction sets)"""
    return (
        p.status == P.PROCESSING
        and result.outcome == Outcome.PROCESSING
        and not result.review_flags
        and not result.failure_kind
        and all(p.provider_data.get(k) is not None for k in result.data)
        and set(result.fields) <= POSITION_FIELDS
        and result.fields.get("transaction_hash", p.transaction_hash) == p.transaction_hash
    )


def apply_logs(
    chain: ChainConfig,
    head: int,
    final_to: int,
    logs: list[rpc.DecodedLog],
    found: dict[str, dict[str, Any] | None],
    report: PassReport,
) -> None:
    if not logs:
        return
    actor = monitor_actor(chain)
    deferred = [d for d in logs if d.name == "PayoutDeferred"]
    logs = [d for d in logs if d.name != "PayoutDeferred"]
    ids = {d.args["escrow_id"] for d in logs}
    payments = {
        p.escrow_id: p
        for p in PaymentTransaction.objects.filter(chain_id=chain.chain_id, escrow_id__in=ids)
    }

    def apply(d: rpc.DecodedLog) -> None:
        p = payments[d.args["escrow_id"]]
        p.refresh_from_db()
        if p.contract_address and d.address != p.contract_address.lower():
            return  # the same id on another escrow contract: not this payment's escrow
        final = d.block_number <= final_to
        if d.name == "Deposited":
            _on_deposit(chain, head, p, d, final, found, actor, report)
        elif final:
            report.events += 1
            _on_final_event(chain, p, d, actor)

    in_chunks(
        chain,
        [d for d in logs if d.args["escrow_id"] in payments],
        apply,
        lambda d: [payments[d.args["escrow_id"]].id],
    )
    # a payout the contract could not push is owed to its recipient until they withdraw it:
    # staff are told, with the call that collects it (the escrow event of the same
    # transaction names the payment)
    by_tx = {d.transaction_hash: payments.get(d.args["escrow_id"]) for d in logs}

    def owed(d: rpc.DecodedLog) -> None:
        p = by_tx.get(d.transaction_hash)
        if p is None or d.block_number > final_to:
            return
        with transaction.atomic():
            _, locked = lock_payment(p.id)
            payment_flag(
                locked,
                "payout_deferred",
                actor=actor,
                details={
                    "recipient": d.args["recipient"],
                    "token": d.args["token"],
                    "amount_base_units": str(d.args["amount"]),
                    "transaction_hash": d.transaction_hash,
                    "withdraw": rpc.escrow_withdraw_data(d.args["token"]),
                },
            )

    in_chunks(
        chain, deferred, owed, lambda d: [p.id] if (p := by_tx.get(d.transaction_hash)) else []
    )


def _on_deposit(
    chain: ChainConfig,
    head: int,
    p: PaymentTransaction,
    d: rpc.DecodedLog,
    final: bool,
    found: dict[str, dict[str, Any] | None],
    actor: Actor,
    report: PassReport,
) -> None:
    if p.status in PAID_STATES:
        return
    problem = escrow_terms_problem(chain, payment_data(p), d.args)
    if problem:
        with transaction.atomic():
            _, locked = lock_payment(p.id)
            payment_flag(
                locked,
                "escrow_terms_mismatch",
                actor=actor,
                details=dict(d.args) | {"amount": str(d.args.get("amount")), "problem": problem[0]},
            )
        if final and p.status in (P.PENDING, P.PROCESSING, P.UNKNOWN):
            payment_apply_result(
                payment_id=p.id,
                actor=actor,
                result=ProviderResult(
                    Outcome.FAILED, error_code=problem[0], error_message=problem[1]
                ),
            )
        return
    receipt = found.get(f"rc:{d.transaction_hash}") or {}
    late = {"expires_at": p.expires_at.isoformat() if p.expires_at else None}
    if _credit_event(p, d, final, d.args["buyer"], "deposit", late, actor, head, receipt):
        report.confirmed += final


def _credit_event(
    p: PaymentTransaction,
    d: rpc.DecodedLog,
    final: bool,
    sender: str,
    kind: str,
    late: dict[str, Any],
    actor: Actor,
    head: int,
    receipt: dict[str, Any] | None = None,
) -> bool:
    """A contract event that pays ``p`` (an escrow deposit, a Payments ``Paid``): shallow it
    is ``processing`` at its block, final it confirms; a payment that had expired is credited
    and flagged ``late_payment`` (``late``: the flag's details). False when nothing changed."""
    if not final and p.block_hash == d.block_hash and p.status == P.PROCESSING:
        return False  # seen already; confirmations are updated in bulk
    flags = [("late_payment", late)] if p.status == P.EXPIRED else []
    return _savepoint_apply(
        p.id,
        ProviderResult(
            Outcome.SUCCEEDED if final else Outcome.PROCESSING,
            reference=d.transaction_hash,
            raw_status=f"{kind}_final" if final else f"{kind}_seen",
            fields={
                "transaction_hash": d.transaction_hash,
                "sender_address": sender,
                **rpc.mined_position(d.block_number, d.block_hash, head, receipt),
            },
            review_flags=flags,
        ),
        actor,
        details={"transaction_hash": d.transaction_hash, "event": d.name},
    )


def apply_moves(
    chain: ChainConfig, moves: list[Move], one_at_a_time: Callable[[Move], None]
) -> list[Move]:
    """Set-based first (``payments_move_many``, a chunk per transaction); the moves it leaves
    (anything to flag or decide), or a whole chunk it fails on, go through ``one_at_a_time``
    in ``in_chunks`` (each its own savepoint; a failure flags ``monitor_error``). Returns the
    moves applied set-based."""
    actor = monitor_actor(chain)
    rest: list[Move] = []
    for offset in range(0, len(moves), CHUNK_SIZE):
        chunk = moves[offset : offset + CHUNK_SIZE]
        try:
            rest += payments_move_many(chunk, actor=actor)
        except (OperationalError, InterfaceError):
            raise
        except Exception:  # a hash another payment holds, a bug: one at a time decides
            logger.exception("chain %s: set-based apply failed; one at a time", chain.chain_id)
            rest += chunk
    in_chunks(chain, rest, one_at_a_time, lambda m: [m.payment_id])
    left = {id(m) for m in rest}
    return [m for m in moves if id(m) not in left]


def apply_paid(
    chain: ChainConfig,
    head: int,
    final_to: int,
    paid: list[rpc.DecodedLog],
    report: PassReport,
) -> None:
    """The Payments contract's ``Paid`` events: each pays the payment whose id it names, and
    nothing else pays a payment bound on chain. Shallow, the payment is ``processing`` (and
    climbs with the rest in ``confirm_at_depth``); final, it confirms at once. The plain case
    is applied set-based; the rest (flags, closed payments, a block that changed) one at a
    time."""
    if not paid:
        return
    actor = monitor_actor(chain)
    payments = {
        p.chain_payment_id: p
        for p in PaymentTransaction.objects.filter(
            chain_id=chain.chain_id,
            chain_payment_id__any=sorted({d.args["payment_id"] for d in paid}),
        )
        # the signed recipient only, not kilobytes of provider data a row
        .only(
            "id",
            "chain_payment_id",
            "status",
            "block_hash",
            "contract_address",
            "token_address",
            "amount_base_units",
        )
        .annotate(intent_recipient=KT("provider_data__intent__recipient"))
    }
    events: dict[Any, rpc.DecodedLog] = {}
    moves: list[Move] = []
    for d in paid:
        p = payments.get(d.args["payment_id"])
        if p is None:
            continue
        events[p.id] = d
        final = d.block_number <= final_to
        if not final and p.block_hash == d.block_hash and p.status == P.PROCESSING:
            continue  # seen already; confirmations are updated in bulk
        plain = (
            d.address == (p.contract_address or "").lower()
            and p.status in (P.PENDING, P.UNKNOWN, P.PARTIALLY_PAID, P.PROCESSING)
            and (final or p.status != P.PROCESSING)  # shallow and moved block: position only
            and paid_terms_problem(
                p.token_address,
                p.amount_base_units,
                {"intent": {"recipient": p.intent_recipient}},  # type: ignore[attr-defined]
                d.args,
            )
            is None
        )
        moves.append(
            Move(
                payment_id=p.id,
                transition=("confirm" if final else "start_processing") if plain else "",
                raw_status="paid_final" if final else "paid_seen",
                fields={
                    "transaction_hash": d.transaction_hash,
                    "sender_address": d.args["payer"],
                    **rpc.mined_position(d.block_number, d.block_hash, head),
                },
                details={"transaction_hash": d.transaction_hash, "event": d.name},
            )
        )

    def one_at_a_time(m: Move) -> None:
        p = PaymentTransaction.objects.get(pk=m.payment_id)
        d = events[m.payment_id]
        _on_paid(chain, head, p, d, d.block_number <= final_to, actor, report)

    moved = apply_moves(chain, [m for m in moves if m.transition], one_at_a_time)
    report.confirmed += sum(1 for m in moved if m.transition == "confirm")
    in_chunks(
        chain, [m for m in moves if not m.transition], one_at_a_time, lambda m: [m.payment_id]
    )


def _on_paid(
    chain: ChainConfig,
    head: int,
    p: PaymentTransaction,
    d: rpc.DecodedLog,
    final: bool,
    actor: Actor,
    report: PassReport,
) -> None:
    if d.address != (p.contract_address or "").lower():
        return  # another deployment's event for the same id: not this payment's contract
    if p.status in PAID_STATES and p.transaction_hash == d.transaction_hash:
        return  # this event paid it
    details = {
        "transaction_hash": d.transaction_hash,
        "payer": d.args["payer"],
        "amount_base_units": str(d.args["amount"]),
        "block_number": d.block_number,
    }
    problem = paid_terms_problem(p.token_address, p.amount_base_units, p.provider_data, d.args)
    if problem or p.status not in (*OPEN_STATES, P.EXPIRED):
        # other terms than signed (only a misused operator key could), money for a payment
        # closed before it arrived (an older attempt paid after a retry), or paid already
        # (through its deposit address): staff decide, and refund; nothing is credited
        reason = (
            "binding_terms_mismatch"
            if problem
            else "paid_twice"
            if p.status in PAID_STATES
            else "paid_after_close"
        )
        with transaction.atomic():
            _, locked = lock_payment(p.id)
            payment_flag(locked, reason, actor=actor, details=details | {"problem": problem})
        return
    if _credit_event(p, d, final, d.args["payer"], "paid", details, actor, head):
        report.confirmed += final


def _transfer_candidates(
    chain: ChainConfig, transfers: list[rpc.DecodedLog]
) -> dict[tuple[str, int, str, str], list[PaymentTransaction]]:
    """Open, unclaimed token payments by (token, base units, pay-to address, payer's wallet),
    oldest first. A payment that names no wallet (recorded before payments did) is never
    matched from a log: only a claim can pay it."""
    found: dict[tuple[str, int, str, str], list[PaymentTransaction]] = defaultdict(list)
    for p in (
        PaymentTransaction.objects.filter(
            chain_id=chain.chain_id,
            method=PaymentMethod.CRYPTO,
            status__in=(P.PENDING, P.EXPIRED),
            transaction_hash__isnull=True,
            chain_payment_id__isnull=True,  # bound on chain: paid only by what names it
            token_address__in={d.address for d in transfers},
            amount_base_units__in={int(d.args["value"]) for d in transfers},
        )
        .select_related("order")
        .order_by("created_at")
    ):
        to = (p.pay_to_address or chain.receiving_address).lower()
        payer = payer_address(p.provider_data)
        if payer:
            key = (str(p.token_address).lower(), int(p.amount_base_units or 0), to, payer)
            found[key].append(p)
    return found


def _in_window(p: PaymentTransaction, block_time: datetime | None) -> bool:
    """Paid while the payment was open: not before it was made, not after it expired."""
    if block_time is None:
        return False
    if block_time < p.created_at - MATCH_CLOCK_SKEW:
        return False
    return p.expires_at is None or block_time <= p.expires_at


def apply_transfers(
    chain: ChainConfig,
    head: int,
    transfers: list[rpc.DecodedLog],
    times: dict[int, int],
    found: dict[str, dict[str, Any] | None],
    report: PassReport,
) -> None:
    """Token payments nobody claimed, found by their ``Transfer`` to our receiving address.

    A transfer pays the one open, unclaimed payment asking for exactly that token and amount
    (base units) to that address from that payer's wallet, in the window between the
    payment's creation and its expiry. When two or more payments qualify, nothing is
    guessed: each is flagged ``ambiguous_transfer`` for staff, and the buyer who claims the
    hash settles it. Crediting the oldest would be right only by chance, and a wrong guess
    pays one buyer's order with another buyer's money. A matched payment then follows the
    claimed path: ``processing`` while shallow, ``confirmed`` at depth after its block hash
    re-checks."""
    if not transfers:
        return
    actor = monitor_actor(chain)
    candidates = _transfer_candidates(chain, transfers)
    taken: set[Any] = set()
    matches: list[tuple[rpc.DecodedLog, PaymentTransaction]] = []
    ambiguous: list[tuple[rpc.DecodedLog, list[PaymentTransaction]]] = []
    seen_hashes: set[str] = set()
    for d in transfers:
        if d.transaction_hash in seen_hashes:
            continue  # one transaction pays one payment (its hash is the payment's)
        seen_hashes.add(d.transaction_hash)
        stamp = times.get(d.block_number)
        block_time = datetime.fromtimestamp(stamp, tz=UTC) if stamp is not None else None
        key = (d.address, int(d.args["value"]), d.args["to"], d.args["from"])
        open_ = [
            p for p in candidates.get(key, []) if p.id not in taken and _in_window(p, block_time)
        ]
        if len(open_) == 1:
            taken.add(open_[0].id)
            matches.append((d, open_[0]))
        elif open_:
            ambiguous.append((d, open_))

    def match(item: tuple[rpc.DecodedLog, PaymentTransaction]) -> None:
        d, p = item
        _, locked = lock_payment(p.id)
        if locked.transaction_hash or locked.status not in (P.PENDING, P.EXPIRED):
            return  # claimed or closed since it was read
        receipt = found.get(f"rc:{d.transaction_hash}") or {}
        fields: dict[str, Any] = {
            "transaction_hash": d.transaction_hash,
            "sender_address": rpc.norm_address(receipt.get("from")) or d.args["from"],
            **rpc.mined_position(d.block_number, d.block_hash, head, receipt),
        }
        result = ProviderResult(
            Outcome.PROCESSING,
            reference=d.transaction_hash,
            raw_status="transfer_seen",
            fields=fields,
            data={"claimed_at": timezone.now().isoformat(), "matched_by": "transfer_log"},
        )
        details = {"transaction_hash": d.transaction_hash, "matched_by": "transfer_log"}
        if _savepoint_apply(p.id, result, actor, details=details):
            report.matched += 1

    def flag(item: tuple[rpc.DecodedLog, list[PaymentTransaction]]) -> None:
        d, payments = item
        details = {
            "transaction_hash": d.transaction_hash,
            "token_address": d.address,
            "amount_base_units": str(d.args["value"]),
            "sender_address": d.args["from"],
            "block_number": d.block_number,
            "candidates": [str(p.id) for p in payments],
        }
        for p in payments:
            with transaction.atomic():
                _, locked = lock_payment(p.id)
                payment_flag(locked, "ambiguous_transfer", actor=actor, details=details)
        report.ambiguous += 1

    in_chunks(chain, matches, match, lambda item: [item[1].id])
    in_chunks(chain, ambiguous, flag, lambda item: [p.id for p in item[1]])


def _on_final_event(
    chain: ChainConfig, p: PaymentTransaction, d: rpc.DecodedLog, actor: Actor
) -> None:
    decimals = (chain.asset_for_token(p.token_address or None) or chain.assets[0]).decimals
    info = {"transaction_hash": d.transaction_hash, "event": d.name}
    if d.name == "Released":
        with transaction.atomic():
            _, locked = lock_payment(p.id)
            if locked.status in (P.CONFIRMED, P.PARTIALLY_REFUNDED):
                payment_transition(locked, "complete", actor=actor, details=info)
            elif locked.status == P.DISPUTED:
                _close_escrow_dispute(locked, actor, info)
    elif d.name == "Refunded":
        _record_chain_refund(p, int(d.args["amount"]), decimals, d, actor)
        with transaction.atomic():
            _, locked = lock_payment(p.id)
            if locked.status == P.DISPUTED and locked.refunded_amount >= locked.amount:
                _close_escrow_dispute(locked, actor, info)  # all went back: the escrow closed
    elif d.name == "Reclaimed":  # EscrowV2: the buyer took back what it held
        # refunds still on their way cannot be paid any more (the escrow is closed): they
        # fail first, so what they reserved is free for the reclaim's record
        for pending in Refund.objects.filter(
            payment_id=p.id, status__in=(RefundStatus.PENDING, RefundStatus.UNKNOWN)
        ):
            refund_apply_result(
                refund_id=pending.id,
                actor=actor,
                result=ProviderResult(
                    Outcome.FAILED,
                    error_code="escrow_reclaimed",
                    error_message="The buyer reclaimed the escrow first.",
                ),
            )
        _record_chain_refund(p, int(d.args["amount"]), decimals, d, actor)
        with transaction.atomic():
            _, locked = lock_payment(p.id)
            if locked.status == P.DISPUTED:
                _close_escrow_dispute(locked, actor, info)
    elif d.name == "Disputed":
        if p.status in (P.CONFIRMED, P.COMPLETED, P.PARTIALLY_REFUNDED):
            payment_open_dispute(payment_id=p.id, actor=actor, details=info)
    elif d.name == "Resolved":
        buyer_units = int(d.args["buyer_amount"])
        if buyer_units:
            _record_chain_refund(p, buyer_units, decimals, d, actor)
        with transaction.atomic():
            _, locked = lock_payment(p.id)
            if locked.status != P.DISPUTED:
                return
            details = info | {
                "buyer_amount_base_units": str(buyer_units),
                "seller_amount_base_units": str(d.args["seller_amount"]),
            }
            _close_escrow_dispute(locked, actor, details)


def _close_escrow_dispute(p: PaymentTransaction, actor: Actor, details: dict[str, Any]) -> None:
    """The escrow paid out after a dispute: close it through the one dispute service, by what
    the buyer got back (the refunds recorded from the same events)."""
    if p.refunded_amount >= p.amount:
        outcome = "lost"
    elif p.refunded_amount > 0:
        outcome = "split"
    else:
        outcome = "released"
    payment_close_dispute(payment_id=p.id, actor=actor, outcome=outcome, details=details)


def _record_chain_refund(
    p: PaymentTransaction, units: int, decimals: int, d: rpc.DecodedLog, actor: Actor
) -> None:
    """A refund the contract paid: settle our refund row for that transaction, or (paid by the
    seller, or as the buyer's part of a resolution) record one."""
    tracked = (
        CT.objects.filter(
            chain_id=p.chain_id, transaction_hash=d.transaction_hash, refund__isnull=False
        )
        .select_related("refund")
        .first()
    )
    refund: Refund | None = tracked.refund if tracked else None
    if refund is None:
        reference = f"{d.transaction_hash}:{d.log_index}"
        refund = Refund.objects.filter(provider_reference=reference).first()
        if refund is None:
            refund = payment_refund(
                order_id=p.order_id,
                payment_id=p.id,
                actor=actor,
                amount=base_units_to_amount(units, decimals),
                reason=f"{d.name} on chain",
                send=False,
            )
            refund_apply_result(
                refund_id=refund.id,
                actor=actor,
                result=ProviderResult(Outcome.PENDING, reference=reference, raw_status="on_chain"),
            )
    if refund.status in (RefundStatus.PENDING, RefundStatus.UNKNOWN):
        refund_apply_result(
            refund_id=refund.id,
            actor=actor,
            result=ProviderResult(Outcome.SUCCEEDED, raw_status="confirmed"),
        )


def confirm_at_depth(
    chain: ChainConfig,
    head: int,
    final_to: int,
    canonical: dict[int, str | None],
    report: PassReport,
) -> None:
    actor = monitor_actor(chain)
    deep = (
        watched(chain)
        .filter(block_number__isnull=False, block_number__lte=final_to)
        .exclude(provider_status=UNDERPAID)  # short: waits for staff, never confirmed by depth
        .values_list("id", "block_number", "block_hash")
    )
    moves = [
        Move(
            payment_id=payment_id,
            transition="confirm",
            raw_status="confirmed",
            fields={"confirmations": head - int(block_number) + 1},
        )
        for payment_id, block_number, block_hash in deep
        # not re-checked in this pass (or reorged): never confirm blind
        if canonical.get(int(block_number)) == block_hash
    ]

    def confirm(m: Move) -> None:  # one at a time: what the set-based path leaves
        payment_apply_result(
            payment_id=m.payment_id,
            actor=actor,
            result=ProviderResult(Outcome.SUCCEEDED, raw_status=m.raw_status, fields=m.fields),
        )
        report.confirmed += 1

    report.confirmed += len(apply_moves(chain, moves, confirm))
    # the position only (no transition): one UPDATE for every payment still climbing
    depth = head + 1 - F("block_number")
    watched(chain).filter(status=P.PROCESSING, block_number__isnull=False).exclude(
        confirmations=depth
    ).update(confirmations=depth)


def apply_sent(
    chain: ChainConfig,
    client: rpc.ChainClient,
    sent: list[ChainTransaction],
    found: dict[str, dict[str, Any] | None],
) -> None:
    actor = monitor_actor(chain)
    now = timezone.now()
    for t in sent:
        receipt = found.get(f"rc:{t.transaction_hash}")
        if receipt is None:
            if t.raw_transaction and now - t.updated_at > REBROADCAST_AFTER:
                # sent after the pass's transaction commits: no network call inside it
                transaction.on_commit(partial(chain_broadcast, t.pk), robust=True)
                CT.objects.filter(pk=t.pk).update(updated_at=now)
            elif t.purpose == CT.Purpose.MANUAL_REFUND and now - t.created_at > timedelta(
                seconds=chain.claim_timeout_seconds
            ):
                _sent_failed(t, "never seen on chain", actor)
            continue
        error = ""
        if rpc.to_int(receipt.get("status")) != 1:
            error = "reverted"
        elif t.purpose == CT.Purpose.MANUAL_REFUND:
            error = _manual_refund_problem(t, found.get(f"tx:{t.transaction_hash}") or {}, receipt)
        if error:
            _sent_failed(t, error, actor)
            continue
        CT.objects.filter(pk=t.pk).update(
            status=CT.Status.MINED,
            block_number=rpc.to_int(receipt["blockNumber"]),
            block_hash=str(receipt["blockHash"]).lower(),
            gas_used=rpc.to_int(receipt.get("gasUsed")),
            effective_gas_price=rpc.to_int(receipt.get("effectiveGasPrice")),
            from_address=t.from_address or rpc.norm_address(receipt.get("from")),
        )


def _manual_refund_problem(t: ChainTransaction, tx: dict[str, Any], receipt: dict[str, Any]) -> str:
    payment = t.payment
    buyer = (payment.sender_address or "").lower()
    units = int(t.value_base_units)
    if payment.token_address:
        paid = sum(
            int(d.args["value"])
            for d in (rpc.decode_log(log) for log in receipt.get("logs", []))
            if d
            and d.name == "Transfer"
            and d.address == payment.token_address.lower()
            and d.args["to"] == buyer
        )
    else:
        paid = rpc.to_int(tx.get("value")) if rpc.norm_address(tx.get("to")) == buyer else 0
    if paid != units:
        return f"pays {paid} base units to the payer, the refund is {units}"
    return ""


def _sent_failed(t: ChainTransaction, error: str, actor: Actor) -> None:
    CT.objects.filter(pk=t.pk).update(status=CT.Status.FAILED, error=error[:2000])
    if t.refund_id:
        refund_apply_result(
            refund_id=t.refund_id,
            actor=actor,
            result=ProviderResult(
                Outcome.FAILED, error_code="transaction_failed", error_message=error
            ),
        )
    with transaction.atomic():
        _, payment = lock_payment(t.payment_id)
        payment_flag(
            payment,
            "platform_transaction_failed",
            actor=actor,
            details={"transaction_hash": t.transaction_hash, "purpose": t.purpose, "error": error},
        )


def confirm_sent_at_depth(
    chain: ChainConfig, final_to: int, canonical: dict[int, str | None]
) -> None:
    actor = monitor_actor(chain)
    for t in CT.objects.filter(
        chain_id=chain.chain_id, status=CT.Status.MINED, block_number__lte=final_to
    ):
        if canonical.get(int(t.block_number or 0)) != t.block_hash:
            continue
        CT.objects.filter(pk=t.pk).update(status=CT.Status.CONFIRMED)
        if t.refund_id and t.purpose in (CT.Purpose.PAYOUT, CT.Purpose.MANUAL_REFUND):
            refund_apply_result(
                refund_id=t.refund_id,
                actor=actor,
                result=ProviderResult(Outcome.SUCCEEDED, raw_status="confirmed"),
            )


def expire(chain: ChainConfig, report: PassReport) -> None:
    """Unpaid chain payments past ``expires_at``, closed by THE expiry rule
    (``payments.jobs.payment_expire``, which the stale-payment sweeper runs for every method);
    the pass only finds them sooner and counts them."""
    actor = monitor_actor(chain)
    overdue = PaymentTransaction.objects.filter(
        chain_id=chain.chain_id,
        method__in=CHAIN_METHODS,
        status__in=(P.PENDING, P.PARTIALLY_PAID),
        transaction_hash__isnull=True,
        expires_at__lt=timezone.now(),
    ).values_list("id", flat=True)

    def expire(payment_id: Any) -> None:
        if payment_expire(payment_id=payment_id, actor=actor) == P.EXPIRED:
            report.expired += 1

    in_chunks(chain, list(overdue), expire, lambda payment_id: [payment_id])
