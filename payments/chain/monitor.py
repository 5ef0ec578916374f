"""The chain monitor: one poll pass per chain (docs/architecture.md).

Its cost grows with new blocks, not with pending payments:

1. read the head and the node's ``finalized`` block in one request; work up to
   ``head - lag``; a block is final at ``required_confirmations`` deep or at or below the
   finalized block, whichever comes first;
2. re-read the hashes of the last K blocks (and of the blocks holding mined, unconfirmed
   transactions) in ONE batched request; a changed hash is a reorg: the payments in it go back
   to pending (flagged ``reorg``), never forward;
3. one ``eth_getLogs`` request over the blocks not yet final: the escrow contract's events, the
   Payments contract's ``Paid`` events (each names the payment it pays: the only way a new
   crypto payment is credited) and, for payments made before those, the accepted tokens'
   ``Transfer`` events to our receiving addresses (matched by exact token, amount, payer and
   time window; ambiguous ones go to staff);
4. batched receipts only for claimed transactions not yet mined (and platform-sent ones);
5. confirm what has its confirmations and whose block hash re-checked. Results are applied in
   chunks, each its own transaction, each payment or event a savepoint: one that raises is
   flagged ``monitor_error`` and the pass goes on. The cursor is stored by the pass's last
   transaction, so a pass failing midway (database lost) is re-run from the same cursor
   (every step is idempotent).

A pass without a cursor (the first, or the cursor lost) starts at the block mined when the oldest
open chain payment was created, found by a few batched probes of block timestamps, and catches
up ``max_blocks_per_pass`` blocks a pass: money paid before the first poll is not missed.

Events of the escrow contract are applied only once final (``required_confirmations`` deep);
a deposit seen earlier shows the payment as ``processing``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common.locks import try_lock
from payments.chain import deposits
from payments.chain.apply import (
    CHAIN_METHODS,
    CT,
    LATE_CLAIM_WATCH,
    WATCHED,
    P,
    PassReport,
    apply_awaiting,
    apply_logs,
    apply_paid,
    apply_reorg,
    apply_sent,
    apply_transfers,
    confirm_at_depth,
    confirm_sent_at_depth,
    expire,
    watched,
)
from payments.models import (
    ChainCursor,
    ChainTransaction,
    PaymentMethod,
    PaymentTransaction,
)
from payments.providers.chain import client as rpc
from payments.providers.chain.provider import CLOCK_SKEW
from payments.providers.chain.registry import ChainConfig, all_chains, get_chain

MAX_BACKOFF_SECONDS = 600


# --- entry points -----------------------------------------------------------------------
logger = logging.getLogger(__name__)


def chain_poll(chain_id: int | None = None, *, ignore_backoff: bool = False) -> PassReport:
    """One pass over one chain, unless another pass holds the chain or it is backing off."""
    chain = get_chain(chain_id)
    report = PassReport(chain_id=chain.chain_id)
    backoff_key = f"chain-backoff:{chain.chain_id}"
    state = cache.get(backoff_key) or {}
    if not ignore_backoff and state.get("until", 0) > time.time():
        report.skipped = "backoff"
        return report
    with try_lock(f"chain-monitor:{chain.chain_id}") as acquired:
        if not acquired:
            report.skipped = "locked"
            return report
        client = rpc.client_for(chain.rpc_url)
        before = client.stats.snapshot()
        started = time.perf_counter()
        try:
            _poll(chain, client, report)
        except (rpc.RpcError, rpc.RpcUnavailable) as exc:
            failures = int(state.get("failures", 0)) + 1
            delay = min(MAX_BACKOFF_SECONDS, 5 * 2 ** (failures - 1))
            cache.set(backoff_key, {"failures": failures, "until": time.time() + delay}, 3600)
            report.error = str(exc)[:500]
            logger.warning(
                "chain %s: pass failed (%s); next try in %ss", chain.chain_id, exc, delay
            )
        else:
            if state:
                cache.delete(backoff_key)
        finally:
            report.wall_seconds = time.perf_counter() - started
            after = client.stats.snapshot()
            report.http_requests = after["http_requests"] - before["http_requests"]
            report.rpc_calls = after["rpc_calls"] - before["rpc_calls"]
            report.methods = {
                m: n - before["methods"].get(m, 0)
                for m, n in after["methods"].items()
                if n - before["methods"].get(m, 0)
            }
    return report


def chain_poll_all() -> list[PassReport]:
    """A pass over every configured chain; one failing chain does not stop the others."""
    reports = []
    for chain in all_chains():
        try:
            reports.append(chain_poll(chain.chain_id))
        except Exception as exc:  # a bug or a database error on one chain
            logger.exception("chain %s: pass crashed", chain.chain_id)
            reports.append(PassReport(chain_id=chain.chain_id, error=repr(exc)[:500]))
    return reports


def chain_check_transactions(chain_id: int, hashes: list[str]) -> int:
    """Check the named transactions now (a webhook's hint): only those claimed here and not
    yet mined, read from the node, never from the hint. Returns how many were checked."""
    chain = get_chain(chain_id)
    wanted = {h.lower() for h in hashes if isinstance(h, str)}
    awaiting = list(watched(chain).filter(transaction_hash__in=wanted, block_number__isnull=True))
    sent = list(
        CT.objects.filter(
            chain_id=chain.chain_id, status=CT.Status.SENT, transaction_hash__in=wanted
        )
    )
    if not awaiting and not sent:
        return 0
    client = rpc.client_for(chain.rpc_url)
    head = client.block_number()
    found = _fetch_receipts(client, awaiting, sent, [])
    with transaction.atomic():
        apply_awaiting(chain, head, awaiting, found, PassReport(chain_id=chain.chain_id))
        apply_sent(chain, client, sent, found)
    return len(awaiting) + len(sent)


def _poll(chain: ChainConfig, client: rpc.ChainClient, report: PassReport) -> None:
    head, finalized = client.head_and_finalized()
    target = max(0, head - chain.lag)
    # final: the chain's confirmations deep, or at or below the node's finalized block,
    # whichever comes first
    final_to = min(
        target, max(head - chain.required_confirmations + 1, -1 if finalized is None else finalized)
    )
    report.head = head
    cursor = ChainCursor.objects.filter(chain_id=chain.chain_id).first()
    first_pass = cursor is None
    if cursor is None:  # the first pass, or the cursor was lost: see _backfill_start below
        cursor = ChainCursor(
            chain_id=chain.chain_id, block_number=max(0, final_to - chain.reorg_window)
        )
    recent = {int(h): v for h, v in (cursor.recent_hashes or {}).items()}
    start = int(cursor.block_number)

    # positions only: the reorg check reads block numbers and hashes, not provider data
    mined = list(
        watched(chain)
        .filter(block_number__isnull=False)
        .only("id", "status", "transaction_hash", "block_number", "block_hash")
    )
    awaiting = list(
        watched(chain)
        .filter(transaction_hash__isnull=False, block_number__isnull=True)
        # a claim given up on (expired) is still looked for, for LATE_CLAIM_WATCH
        .exclude(status=P.EXPIRED, updated_at__lt=timezone.now() - LATE_CLAIM_WATCH)
        .select_related("order", "order__buyer")  # payment_data() reads both
    )
    sent = list(CT.objects.filter(chain_id=chain.chain_id, status=CT.Status.SENT))
    ct_mined = list(CT.objects.filter(chain_id=chain.chain_id, status=CT.Status.MINED))

    # 2. one batch: recent blocks, new top blocks, blocks holding mined transactions
    window_low = max(0, target - chain.reorg_window + 1)
    heights = set(recent) | set(range(max(window_low, 0), target + 1))
    heights |= {int(p.block_number) for p in mined} | {int(t.block_number) for t in ct_mined}
    heights |= deposits.seen_heights(chain)  # finalised, or dropped, by their block's hash
    if first_pass:
        heights.add(start)  # its timestamp: is it early enough for the oldest open payment?
    headers = client.block_headers(sorted(heights))
    canonical = {h: (v[0] if v else None) for h, v in headers.items()}
    times = {h: v[1] for h, v in headers.items() if v}
    if first_pass:
        # from where the oldest open payment could have been paid, so nothing mined before
        # the first pass is missed (bounded ranges follow)
        start = _backfill_start(chain, client, start, times.get(start))
        report.backfill_from = start + 1
    changed = sorted(h for h, v in recent.items() if canonical.get(h) != v)
    if changed:
        report.reorg_at = changed[0]
        if changed[0] <= start:  # deeper than the confirmations: rewind and re-read
            start = max(0, changed[0] - 1)
    # deposits and Paid events are read once a block: from above the blocks read before
    scan_from = min(_scan_from(start, cursor.scanned_number, recent, canonical), target)
    watched_deposits = deposits.watched_addresses(chain)
    step = chain.max_blocks_per_pass
    if watched_deposits:
        step = min(step, deposits.DEPOSIT_SCAN_BLOCKS)
    to = min(target, scan_from + step)
    report.from_block, report.to_block, report.scan_from = start + 1, to, scan_from

    # the blocks' transactions (native coin to deposit addresses) are read from a second
    # thread while the logs are read and their events applied: the node's work beside ours
    pool = ThreadPoolExecutor(max_workers=1)
    blocks = pool.submit(deposits.fetch_blocks, client, scan_from, to, watched_deposits)
    pool.shutdown(wait=False)

    # 3. one eth_getLogs request: the escrow contracts' events and the token Transfers to our
    #    receiving addresses over the blocks not yet final, the Payments contracts' Paid
    #    events and the token Transfers to deposit addresses over the blocks not read yet
    logs, paid, transfers, to_deposits = _read_logs(
        chain, client, (start, scan_from, to), canonical, set(watched_deposits)
    )
    if transfers:
        claimed = set(
            PaymentTransaction.objects.filter(
                transaction_hash__in={d.transaction_hash for d in transfers}
            ).values_list("transaction_hash", flat=True)
        )
        transfers = [d for d in transfers if d.transaction_hash not in claimed]
        older = sorted({d.block_number for d in transfers} - set(times))
        if older:  # catching up below the reorg window: their timestamps, in one batch
            times |= {h: v[1] for h, v in client.block_headers(older).items() if v}

    # 4. batched receipts: claimed and not mined, platform-sent, newly seen deposits and
    #    transfers
    extra = {d.transaction_hash for d in logs if d.name == "Deposited"}
    extra |= {d.transaction_hash for d in transfers}
    found = _fetch_receipts(client, awaiting, sent, sorted(extra))

    # 5. apply, in chunks of CHUNK_SIZE payments, each chunk its own transaction. The cursor
    #    means "every log up to here is applied as final"; it is stored by the pass's last
    #    transaction, after every chunk committed. A pass failing midway leaves it where it was
    #    and the next pass re-reads the same range: every step is idempotent by the payment's
    #    own row (locked transitions from its current status; a transaction hash pays one
    #    payment; chain refunds by their log reference), so a re-run never credits twice.
    applying = time.perf_counter()
    apply_reorg(chain, report, mined, ct_mined, canonical, changed, start)
    apply_awaiting(chain, head, awaiting, found, report)
    apply_logs(chain, head, final_to, logs, found, report)
    apply_paid(chain, head, final_to, paid, report)
    waiting = time.perf_counter()
    fetched = blocks.result()  # its error (a block changed, the node gone) fails the pass
    waited = time.perf_counter() - waiting
    arrivals = deposits.token_arrivals(to_deposits, watched_deposits)
    arrivals += deposits.native_arrivals(client, fetched, canonical, watched_deposits)
    deposits.apply_deposits(chain, scan_from, to, final_to, canonical, arrivals, report)
    apply_transfers(chain, head, transfers, times, found, report)
    confirm_at_depth(chain, head, final_to, canonical, report)
    expire(chain, report)
    with transaction.atomic():
        apply_sent(chain, client, sent, found)
        confirm_sent_at_depth(chain, final_to, canonical)
        new_cursor = max(start, min(to, final_to))
        cursor.block_number = new_cursor
        cursor.block_hash = canonical.get(new_cursor) or cursor.block_hash
        cursor.head_number = head
        cursor.scanned_number = to
        cursor.recent_hashes = {
            str(h): v for h, v in canonical.items() if v and window_low <= h <= target
        }
        cursor.save()
        report.cursor = new_cursor
    report.apply_seconds = time.perf_counter() - applying - waited  # not the node's time


def _scan_from(
    start: int, scanned: int | None, recent: dict[int, str], canonical: dict[int, str | None]
) -> int:
    """The block after which this pass reads deposits and ``Paid`` events: ``scanned`` (the
    last block read for them), unless a block between the cursor and it changed its hash (a
    reorg) or its hash was not kept: then from just below that block. Blocks are immutable by
    hash, and what they held is recorded with the hash (a deposit row, a payment's position),
    so a block is read once, not once a pass until it is final."""
    if scanned is None or scanned <= start:
        return start
    for height in range(start + 1, scanned + 1):
        if height not in recent or canonical.get(height) != recent[height]:
            return height - 1
    return scanned


def _receiving_addresses(chain: ChainConfig) -> list[str]:
    """Where token payments are sent: the chain's receiving address, and any other address
    open token payments were told to pay (the setting changed since)."""
    addresses = {chain.receiving_address} if chain.receiving_address else set()
    addresses |= set(
        PaymentTransaction.objects.filter(
            chain_id=chain.chain_id,
            method=PaymentMethod.CRYPTO,
            status__in=(P.PENDING, P.EXPIRED),
            transaction_hash__isnull=True,
            chain_payment_id__isnull=True,  # made before payments were bound on chain
        )
        .exclude(token_address="")
        .exclude(pay_to_address="")
        .values_list("pay_to_address", flat=True)
        .distinct()
    )
    return sorted(a.lower() for a in addresses if a)


def _backfill_start(
    chain: ChainConfig, client: rpc.ChainClient, default: int, default_time: int | None
) -> int:
    """The cursor a pass without one starts from: just below the block mined at the oldest
    open chain payment's creation (less the clock skew), or ``default`` when nothing is open
    or the default block (its timestamp read with the pass's headers) is early enough: the
    search costs requests only when it is needed."""
    oldest = (
        PaymentTransaction.objects.filter(
            chain_id=chain.chain_id,
            method__in=CHAIN_METHODS,
            status__in=(*WATCHED, P.PARTIALLY_PAID),
            # as far back as late money is still looked for, not to the oldest row ever
            created_at__gte=timezone.now() - LATE_CLAIM_WATCH,
        )
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if oldest is None or default == 0:
        return default  # nothing open, or nothing earlier to read
    moment = int((oldest - CLOCK_SKEW).timestamp())
    if default_time is not None and default_time <= moment:
        return default
    block = client.block_at_or_before(moment)
    return min(default, max(0, block - 1))


def _escrow_contracts(chain: ChainConfig) -> list[str]:
    """The escrow contracts whose events matter: the chain's, and the one every escrow still
    open was made on (a chain moved to EscrowV2 keeps reading its Escrow.vy escrows)."""
    addresses = {chain.escrow_contract} if chain.escrow_contract else set()
    addresses |= set(
        PaymentTransaction.objects.filter(
            # open escrows, and any made recently (a late deposit for a closed one is seen)
            Q(created_at__gte=timezone.now() - LATE_CLAIM_WATCH)
            | ~Q(status__in=(P.COMPLETED, P.REFUNDED, P.FAILED, P.CANCELLED)),
            chain_id=chain.chain_id,
            method=PaymentMethod.ESCROW,
        )
        .exclude(contract_address="")
        .values_list("contract_address", flat=True)
        .distinct()
    )
    return sorted(a.lower() for a in addresses if a)


def _payment_contracts(chain: ChainConfig) -> list[str]:
    """The Payments contracts whose events pay open payments: the chain's, and any other one
    open payments were signed for (the setting changed since)."""
    addresses = {chain.payment_contract} if chain.payment_contract else set()
    addresses |= set(
        PaymentTransaction.objects.filter(
            chain_id=chain.chain_id,
            chain_payment_id__isnull=False,
            status__in=(*WATCHED, P.PARTIALLY_PAID),
        )
        .exclude(contract_address="")
        .values_list("contract_address", flat=True)
        .distinct()
    )
    return sorted(a.lower() for a in addresses if a)


def _read_logs(
    chain: ChainConfig,
    client: rpc.ChainClient,
    blocks: tuple[int, int, int],
    canonical: dict[int, str | None],
    deposit_addresses: set[str],
) -> tuple[list[rpc.DecodedLog], list[rpc.DecodedLog], list[rpc.DecodedLog], list[rpc.DecodedLog]]:
    """(escrow events, Payments ``Paid`` events, token Transfers to our receiving addresses,
    token Transfers to watched deposit addresses), in one request. ``blocks`` is (start,
    scan_from, to): escrow events and Transfers to receiving addresses are read in blocks
    ``start + 1 .. to`` (again each pass until final: they are applied once final), Paid
    events and Transfers to deposit addresses in blocks ``scan_from + 1 .. to`` (once: see
    ``_scan_from``). With deposit addresses watched, the tokens' Transfer filter names no
    recipient (there may be thousands): every transfer of the accepted tokens in the range
    comes back and is matched here, in memory.

    One filter per kind in one JSON-RPC batch, not one filter: topics are positional, and the
    escrow's events carry an escrow id, buyer, seller or nothing where a Transfer carries its
    recipient, so one filter would either drop escrow events or return every transfer of the
    token on the chain. A ``Paid`` event names the payment it pays: that is all it takes.
    Transfers matter only for payments made before payments were bound on chain."""
    start, scan_from, to = blocks
    tokens = sorted({a.address for a in chain.assets if a.address})
    receivers = _receiving_addresses(chain) if tokens else []
    contracts = _payment_contracts(chain)
    wanted: list[tuple[int, dict[str, Any]]] = []  # (first block, filter)
    escrows = _escrow_contracts(chain)
    if escrows:
        wanted.append((start + 1, {"address": escrows, "topics": [rpc.ESCROW_TOPICS]}))
    if contracts:
        wanted.append((scan_from + 1, {"address": contracts, "topics": [rpc.PAID_TOPIC]}))
    if tokens and deposit_addresses:
        first = start + 1 if receivers else scan_from + 1
        wanted.append((first, {"address": tokens, "topics": [rpc.TRANSFER_TOPIC]}))
    elif tokens and receivers:
        recipients = [rpc.address_topic(a) for a in receivers]
        wanted.append(
            (start + 1, {"address": tokens, "topics": [rpc.TRANSFER_TOPIC, None, recipients]})
        )
    filters = [{"fromBlock": rpc.hex_int(first), **f} for first, f in wanted if first <= to]
    if not filters or to <= start:
        return [], [], [], []
    logs: list[rpc.DecodedLog] = []
    paid: list[rpc.DecodedLog] = []
    transfers: list[rpc.DecodedLog] = []
    to_deposits: list[rpc.DecodedLog] = []
    for raw in client.get_logs(start + 1, to, filters):
        decoded = rpc.decode_log(raw)
        if decoded is None or decoded.removed:
            continue
        known = canonical.get(decoded.block_number)
        if known is not None and known != decoded.block_hash:
            # reorged between the two reads: fail the pass, the next reads the range again
            # (skipping it would let the cursor move past a final block's events)
            raise rpc.RpcError("eth_getLogs", f"log in block {decoded.block_number} changed")
        if decoded.name == "Transfer":
            if decoded.address not in tokens:
                continue
            if decoded.args["to"] in receivers:
                transfers.append(decoded)
            elif decoded.args["to"] in deposit_addresses and decoded.block_number > scan_from:
                to_deposits.append(decoded)
        elif decoded.name == "Paid":
            if decoded.address in contracts and decoded.block_number > scan_from:
                paid.append(decoded)
        elif decoded.address in escrows:
            logs.append(decoded)
    for found in (logs, paid, transfers, to_deposits):
        found.sort(key=lambda d: (d.block_number, d.log_index))
    return logs, paid, transfers, to_deposits


def _fetch_receipts(
    client: rpc.ChainClient,
    awaiting: list[PaymentTransaction],
    sent: list[ChainTransaction],
    extra: list[str],
) -> dict[str, dict[str, Any] | None]:
    """{"tx:<hash>": tx, "rc:<hash>": receipt} in one batch."""
    calls: list[tuple[str, list[Any]]] = []
    keys: list[str] = []
    tx_wanted = {str(p.transaction_hash) for p in awaiting} | {
        t.transaction_hash for t in sent if t.purpose == CT.Purpose.MANUAL_REFUND
    }
    rc_wanted = tx_wanted | {t.transaction_hash for t in sent} | set(extra)
    for h in sorted(tx_wanted):
        calls.append(("eth_getTransactionByHash", [h]))
        keys.append(f"tx:{h}")
    for h in sorted(rc_wanted):
        calls.append(("eth_getTransactionReceipt", [h]))
        keys.append(f"rc:{h}")
    if not calls:
        return {}
    return dict(zip(keys, client.batch(calls), strict=True))
