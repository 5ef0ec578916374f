"""Chain-bound payments on anvil: N crypto payments paid in the same few blocks, half through
the Payments contract (a ``pay`` call carrying the signed intent), half by a plain transfer to
the payment's deposit address; nothing is claimed. Measured: every monitor pass from the first
that sees them to the one that has confirmed them all (wall time, the part spent applying to
the database, HTTP requests, JSON-RPC calls), then a steady pass one block later.

    make bench-chain           (python -m benchmarks.chain_bound [--payments 10000])

Payments are created with the provider's own instructions (signed intent, deposit address),
written in bulk; the payers' transactions are sent with anvil's unlocked accounts while it does
not mine, then mined in a few blocks. Emails and receipts are enqueued to Redis as in
production (no worker runs here).
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal
from typing import Any

import requests

from benchmarks.common import bench_anvil, bench_database, header, rpc_batch, setup_django, table

CONFIRMATIONS = 12
VALUE_BASE = 10**15  # 0.001 ETH plus the payment's index in wei


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=10_000)
    args = parser.parse_args()
    header("chain-bound payments: first sight to all confirmed", "make bench-chain")
    from devtools.contracts import deploy

    with bench_anvil("--gas-limit", "300000000") as node, bench_database("chainbound") as db:
        w3, operator, receiving = node.w3, node.accounts[1], node.accounts[9]
        contract = deploy.deploy_payments(w3, node.accounts[0], operator, operator)
        factory, forwarder = deploy.deploy_deposit_factory(
            w3, node.accounts[0], operator, operator, receiving
        )
        setup_django(
            db,
            CHAIN_RPC_URL=node.url,
            CHAIN_ID=str(node.chain_id),
            CRYPTO_RECEIVING_ADDRESS=receiving,
            REQUIRED_CONFIRMATIONS=str(CONFIRMATIONS),
            PAYMENT_PROVIDER_CRYPTO="chain",
            PAYMENT_CONTRACT_ADDRESS=contract,
            DEPOSIT_FACTORY_ADDRESS=factory,
            DEPOSIT_FORWARDER_ADDRESS=forwarder,
            ESCROW_OPERATOR_KEY="0x" + bytes(node.local_account(1).key).hex(),
            CHAIN_DEV_DEPLOYMENT_FILE="",
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        )
        run(node, args.payments)


def seed(node: Any, n: int) -> list[Any]:
    """N crypto payments with the provider's instructions, written in bulk."""
    from django.conf import settings
    from django.utils import timezone

    from common.money import from_base_units
    from orders.models import Order
    from payments.models import PaymentTransaction
    from payments.providers.base import PaymentData
    from payments.providers.chain.provider import ChainProvider
    from tests.factories import UserFactory

    buyer, seller = UserFactory(username="bench-buyer"), UserFactory(username="bench-seller")
    provider = ChainProvider()
    now = timezone.now()
    orders, payments = [], []
    for i in range(n):
        units = VALUE_BASE + i
        amount = from_base_units(units, "ETH")
        order = Order(buyer=buyer, seller=seller, amount=amount, currency="ETH", description="b")
        payment = PaymentTransaction(
            order=order, method="crypto", provider="chain", amount=amount, currency="ETH"
        )
        payment.expires_at = now + settings.PAYMENT_EXPIRY
        result = provider.create_payment(
            PaymentData(
                payment_id=payment.id,
                order_id=order.id,
                method="crypto",
                amount=amount,
                currency="ETH",
                idempotency_key=str(payment.id),
                expires_at=payment.expires_at,
            )
        )
        for name, value in result.fields.items():
            setattr(payment, name, value)
        payment.amount_base_units = Decimal(units)
        payment.provider_data = result.data
        payment.provider_status = result.raw_status
        orders.append(order)
        payments.append(payment)
    Order.objects.bulk_create(orders, batch_size=2000)
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(status="payment_pending")
    PaymentTransaction.objects.bulk_create(payments, batch_size=2000)
    return payments


def pay(node: Any, payments: list[Any]) -> int:
    """Half through the contract, half to the deposit addresses; mined in a few blocks.
    Returns the number of blocks it took."""
    s = requests.Session()
    senders = node.accounts[2:8]
    nonces = {
        a: int(n, 16)
        for a, n in zip(
            senders,
            rpc_batch(node.url, [("eth_getTransactionCount", [a, "pending"]) for a in senders], s),
            strict=True,
        )
    }
    calls = []
    for i, p in enumerate(payments):
        sender = senders[i % len(senders)]
        value = hex(int(p.amount_base_units))
        if i % 2 == 0:
            (request,) = p.provider_data["instructions"]["transaction_requests"]
            tx = {"to": request["to"], "data": request["data"], "gas": hex(120_000)}
        else:
            tx = {"to": p.deposit_address, "gas": hex(21_000)}
        calls.append(
            (
                "eth_sendTransaction",
                [{"from": sender, "value": value, "nonce": hex(nonces[sender]), **tx}],
            )
        )
        nonces[sender] += 1
    for start in range(0, len(calls), 500):
        rpc_batch(node.url, calls[start : start + 500], s)
    blocks = 0
    while True:
        node.mine(1)
        blocks += 1
        pending = rpc_batch(node.url, [("txpool_status", [])], s)[0]
        if int(pending["pending"], 16) == 0 and int(pending["queued"], 16) == 0:
            return blocks


def run(node: Any, n: int) -> None:
    from payments.chain.monitor import chain_poll
    from payments.models import ChainCursor, PaymentTransaction

    t0 = time.perf_counter()
    payments = seed(node, n)
    head = node.w3.eth.block_number
    ChainCursor.objects.create(chain_id=node.chain_id, block_number=head, head_number=head)
    node.set_automine(False)
    blocks = pay(node, payments)
    print(f"{n} payments created and paid in {blocks} blocks: {time.perf_counter() - t0:.1f}s")

    rows: list[list[Any]] = []
    total_wall = total_apply = 0.0
    ids = [p.id for p in payments]
    for i in range(1, 20):
        report = chain_poll(node.chain_id, ignore_backoff=True)
        if report.error or report.skipped:
            raise SystemExit(f"pass failed: {report.error or report.skipped}")
        confirmed = PaymentTransaction.objects.filter(id__in=ids, status="confirmed").count()
        rows.append(
            [
                f"pass {i}",
                report.http_requests,
                report.rpc_calls,
                report.wall_seconds,
                report.apply_seconds,
                confirmed,
            ]
        )
        total_wall += report.wall_seconds
        total_apply += report.apply_seconds
        if confirmed == n:
            break
        node.mine(CONFIRMATIONS)
    else:
        raise SystemExit("not all confirmed after 19 passes")
    node.mine(1)
    steady = chain_poll(node.chain_id, ignore_backoff=True)
    rows.append(
        [
            "steady (1 block later)",
            steady.http_requests,
            steady.rpc_calls,
            steady.wall_seconds,
            steady.apply_seconds,
            "-",
        ]
    )
    print(
        table(
            [
                "pass",
                "HTTP requests",
                "JSON-RPC calls",
                "wall s",
                "applying s",
                "confirmed",
            ],
            rows,
        )
    )
    print(
        f"first sight to all {n} confirmed: {total_wall:.2f}s of passes; applying "
        f"{total_apply:.2f}s = {1000 * total_apply / n:.2f} ms a payment"
    )
    print("sweeps of the deposit addresses are sent by their own job, not by the passes")


if __name__ == "__main__":
    main()
