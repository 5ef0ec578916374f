"""The monitor's cost per pass grows with new blocks, not with pending payments: JSON-RPC
requests are counted for 100 and 1,000 pending payments and compared with naive polling."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Order
from payments.models import PaymentTransaction
from payments.providers.chain import client as rpc
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
MEASURED: dict[int, tuple[int, int]] = {}


@pytest.fixture
def mined_hashes(chain_env) -> list[tuple[str, int, str]]:
    """1,000 real transfers mined in one block: (hash, block number, block hash)."""
    node = chain_env.node
    node.set_automine(False)
    sender = node.accounts[5]
    client = rpc.ChainClient(node.url)
    nonce = client.pending_nonce(sender)
    calls = [
        (
            "eth_sendTransaction",
            [
                {
                    "from": sender,
                    "to": node.accounts[6],
                    "value": hex(i + 1),
                    "gas": hex(21000),
                    "nonce": hex(nonce + i),
                }
            ],
        )
        for i in range(1000)
    ]
    hashes = [str(h).lower() for h in client.batch(calls)]
    node.mine(1)
    receipts = client.receipts(hashes)
    out = []
    for h in hashes:
        receipt = receipts[h]
        out.append((h, rpc.to_int(receipt["blockNumber"]), str(receipt["blockHash"]).lower()))
    node.set_automine(True)
    return out


def make_pending(n: int, mined: list[tuple[str, int, str]], chain_id: int) -> None:
    """``n`` claimed, mined, not yet final crypto payments and ``n`` escrow payments still
    waiting for their deposit: rows made in bulk, as the claim and create would leave them."""
    buyer, seller = UserFactory(username="sbuyer"), UserFactory(username="sseller")
    orders = Order.objects.bulk_create(
        [Order(buyer=buyer, seller=seller, amount="1", currency="ETH") for _ in range(2 * n)]
    )
    later = timezone.now() + timedelta(hours=1)
    rows = []
    for i, order in enumerate(orders):
        common = {
            "order": order,
            "amount": "1",
            "currency": "ETH",
            "chain_id": chain_id,
            "amount_base_units": 10**18,
            "expires_at": later,
        }
        if i < n:
            tx_hash, number, block_hash = mined[i]
            rows.append(
                PaymentTransaction(
                    method="crypto",
                    provider="chain",
                    status="processing",
                    transaction_hash=tx_hash,
                    block_number=number,
                    block_hash=block_hash,
                    **common,
                )
            )
        else:
            rows.append(
                PaymentTransaction(
                    method="escrow",
                    provider="escrow",
                    status="pending",
                    escrow_id="0x" + os.urandom(32).hex(),
                    **common,
                )
            )
    PaymentTransaction.objects.bulk_create(rows)


def measure(chain_env, n, mined):  # type: ignore[no-untyped-def]
    make_pending(n, mined, chain_env.chain_id)
    chain_env.poll()  # the first pass reads the recent window once
    chain_env.node.mine(1)  # then the steady state: one new block per pass
    report = chain_env.poll()
    assert report.confirmed == 0 and report.moved_back == 0
    return report


@pytest.mark.parametrize("n", [100, 1000])
def test_requests_per_pass_stay_flat(chain_env, mined_hashes, settings, n):
    # deep confirmations: the pass watches them all, confirms none (no database churn)
    settings.CHAINS = [{**settings.CHAINS[0], "required_confirmations": 50}]
    report = measure(chain_env, n, mined_hashes)
    pending = PaymentTransaction.objects.filter(status__in=["pending", "processing"]).count()
    print(
        f"\n[chain scale] pending={pending} http_requests={report.http_requests} "
        f"rpc_calls={report.rpc_calls} methods={report.methods} naive_per_payment_polls={pending}"
    )
    assert pending == 2 * n
    # eth_blockNumber, one batch of block hashes, one eth_getLogs: nothing per payment
    assert report.http_requests == 3
    assert report.methods.get("eth_getTransactionReceipt", 0) == 0
    assert report.methods["eth_getBlockByNumber"] <= 66  # the reorg window (+ new blocks)
    MEASURED[n] = (report.http_requests, report.rpc_calls)
    if 100 in MEASURED and 1000 in MEASURED:  # both ran (in this order): equal costs
        assert MEASURED[100] == MEASURED[1000]


def test_confirming_many_at_depth_costs_no_more_requests(chain_env, mined_hashes, settings):
    settings.CHAINS = [{**settings.CHAINS[0], "required_confirmations": 2}]
    make_pending(100, mined_hashes, chain_env.chain_id)
    chain_env.node.mine(2)
    report = chain_env.poll()
    assert report.confirmed == 100 and report.http_requests == 3
    assert PaymentTransaction.objects.filter(status="confirmed").count() == 100
    print(
        f"\n[chain scale] confirming 100 in one pass: http_requests={report.http_requests} "
        f"rpc_calls={report.rpc_calls}"
    )
