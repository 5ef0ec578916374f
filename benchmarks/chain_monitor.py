"""Chain monitor on anvil: JSON-RPC requests and wall time of one pass with 100, 1,000 and
10,000 pending payments, beside naive polling (eth_getTransactionReceipt per hash, and in
batches of 100).

    make bench-chain           (python -m benchmarks.chain_monitor [--sizes 100,1000,10000])

Each pending payment is a native-ETH payment whose buyer reported (claimed) a real transfer
to the receiving address, mined on anvil. Pass 1 is the monitor's first sight of them: one
batched read of their transactions and receipts, each verified (receiver, amount, status) and
moved to ``processing`` in the database. Pass 2 is the steady state one block later: they are
mined and wait for their confirmations; the monitor re-reads block hashes, not transactions.
Counts come from the monitor's own request counting (``PassReport.http_requests/rpc_calls``).
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal
from typing import Any

import requests

from benchmarks.common import bench_anvil, bench_database, header, rpc_batch, setup_django, table

VALUE_BASE = 10**15  # 0.001 ETH, plus the payment's index in wei: every amount differs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    header("chain monitor: requests and time per pass", "make bench-chain")
    with (
        bench_anvil("--no-mining", "--gas-limit", "300000000") as node,
        bench_database("chain") as db,
    ):
        setup_django(
            db,
            CHAIN_RPC_URL=node.url,
            CHAIN_ID=str(node.chain_id),
            CRYPTO_RECEIVING_ADDRESS=node.accounts[9],
            REQUIRED_CONFIRMATIONS="12",
            PAYMENT_PROVIDER_CRYPTO="chain",
            CELERY_TASK_ALWAYS_EAGER="True",
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        )
        run(node, sizes)


def send_transfers(node: Any, n: int, offset: int) -> list[str]:
    """n ETH transfers from account 1 to the receiving address, mined; their hashes."""
    s = requests.Session()
    sender, to = node.accounts[1], node.accounts[9]
    hashes: list[str] = []
    nonce = int(rpc_batch(node.url, [("eth_getTransactionCount", [sender, "pending"])], s)[0], 16)
    for start in range(0, n, 500):
        calls = [
            (
                "eth_sendTransaction",
                [
                    {
                        "from": sender,
                        "to": to,
                        "value": hex(VALUE_BASE + offset + i),
                        "gas": "0x5208",
                        "nonce": hex(nonce + i),
                    }
                ],
            )
            for i in range(start, min(n, start + 500))
        ]
        hashes += rpc_batch(node.url, calls, s)
    node.mine(1 + n // 10000)
    return hashes


def seed(node: Any, hashes: list[str], offset: int) -> None:
    from django.utils import timezone

    from common.money import from_base_units
    from orders.models import Order
    from payments.models import PaymentTransaction
    from tests.factories import UserFactory

    buyer, seller = UserFactory(username="bench-buyer"), UserFactory(username="bench-seller")
    now = timezone.now()
    orders, payments = [], []
    for i, h in enumerate(hashes):
        units = VALUE_BASE + offset + i
        amount = from_base_units(units, "ETH")
        order = Order(buyer=buyer, seller=seller, amount=amount, currency="ETH", description="b")
        orders.append(order)
        payments.append(
            PaymentTransaction(
                order=order,
                method="crypto",
                provider="chain",
                amount=amount,
                currency="ETH",
                chain_id=node.chain_id,
                amount_base_units=Decimal(units),
                pay_to_address=node.accounts[9].lower(),
                transaction_hash=h.lower(),
                required_confirmations=12,
                provider_data={"claimed_at": now.isoformat()},
            )
        )
    Order.objects.bulk_create(orders, batch_size=2000)
    PaymentTransaction.objects.bulk_create(payments, batch_size=2000)


def naive(node: Any, hashes: list[str]) -> list[list[Any]]:
    s = requests.Session()
    rows = []
    t0 = time.perf_counter()
    for h in hashes:
        s.post(
            node.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [h]},
            timeout=60,
        ).json()
    rows.append(["naive: receipt per hash", len(hashes), len(hashes), time.perf_counter() - t0])
    t0 = time.perf_counter()
    for start in range(0, len(hashes), 100):
        chunk = hashes[start : start + 100]
        rpc_batch(node.url, [("eth_getTransactionReceipt", [h]) for h in chunk], s)
    rows.append(
        [
            "naive: receipts batched by 100",
            -(-len(hashes) // 100),
            len(hashes),
            time.perf_counter() - t0,
        ]
    )
    return rows


def run(node: Any, sizes: list[int]) -> None:
    from payments.chain.monitor import chain_poll
    from payments.models import PaymentTransaction

    rows = []
    offset = 0
    for n in sizes:
        t0 = time.perf_counter()
        hashes = send_transfers(node, n, offset)
        seed(node, hashes, offset)
        setup = time.perf_counter() - t0
        offset += n
        for label in ("pass 1 (first sight)", "pass 2 (steady, 1 block later)"):
            if label.startswith("pass 2"):
                node.mine(1)
            t0 = time.perf_counter()
            report = chain_poll(node.chain_id, ignore_backoff=True)
            wall = time.perf_counter() - t0
            if report.error or report.skipped:
                raise SystemExit(f"pass failed: {report.error or report.skipped}")
            applying = report.apply_seconds
            rows.append(
                [n, f"monitor {label}", report.http_requests, report.rpc_calls, wall, applying]
            )
        moved = PaymentTransaction.objects.filter(
            transaction_hash__in=[h.lower() for h in hashes], block_number__isnull=False
        ).count()
        for r in naive(node, hashes):
            rows.append([n, *r, "-"])
        print(f"{n} payments: set up in {setup:.1f}s; {moved} seen mined by the monitor")
        # out of the way of the next size (a benchmark database: no transitions needed)
        PaymentTransaction.objects.filter(transaction_hash__in=[h.lower() for h in hashes]).update(
            status="confirmed"
        )
    print(
        table(["pending", "how", "HTTP requests", "JSON-RPC calls", "wall s", "applying s"], rows)
    )
    print("monitor pass includes verifying each transaction and writing the payments (PostgreSQL);")
    print("applying s: the part of it spent applying results to the database (chunked)")


if __name__ == "__main__":
    main()
