"""Chain faults on a real anvil: a reorg deeper than one block before the required depth, an
RPC node that errors and then recovers (a fault proxy in front of anvil), and two pollers of
one chain started together. Nothing is credited twice, nothing is lost."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from orders.models import OrderPaymentEvent
from payments.chain.monitor import chain_poll
from payments.providers.chain import client as rpc
from tests.payments.chain.conftest import (  # noqa: F401
    CONFIRMATIONS,
    chain_contracts,
    chain_env,
    chain_order,
    claim,
    reload,
    start_payment,
)
from tests.peers.anvil import anvil  # noqa: F401
from tests.peers.faulty_http import FaultProxy

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def confirms(payment) -> int:  # type: ignore[no-untyped-def]
    return OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").count()


def signed_transfer(env, value: int) -> bytes:  # type: ignore[no-untyped-def]
    w3, payer = env.w3, env.node.local_account(3)
    return payer.sign_transaction(
        {
            "to": w3.to_checksum_address(env.receiving),
            "value": value,
            "gas": 21000,
            "maxFeePerGas": 100 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "nonce": w3.eth.get_transaction_count(payer.address),
            "chainId": env.chain_id,
            "type": 2,
        }
    ).raw_transaction


def test_reorg_two_blocks_deep_before_the_required_depth(chain_env, buyer, seller):  # noqa: F811
    node = chain_env.node
    payment = start_payment(chain_order(buyer, seller), "crypto")
    raw = signed_transfer(chain_env, 5 * 10**17)
    tx_hash = chain_env.send_raw(raw)
    payment = claim(payment, tx_hash)
    node.mine(1)  # two confirmations of the three required
    chain_env.poll()
    assert reload(payment).status == "processing"

    node.reorg(2)  # both blocks replaced; the transaction is gone
    report = chain_env.poll()
    payment = reload(payment)
    assert report.moved_back == 1 and payment.status == "pending"
    assert payment.block_number is None and payment.transaction_hash == tx_hash
    node.mine(CONFIRMATIONS + 1)
    chain_env.poll()
    assert reload(payment).status == "pending" and confirms(payment) == 0

    chain_env.send_raw(raw)  # mined again later
    chain_env.poll()
    node.mine(CONFIRMATIONS)
    chain_env.poll()
    chain_env.poll()
    assert reload(payment).status == "confirmed" and confirms(payment) == 1


def test_rpc_node_errors_then_recovers(chain_env, settings, buyer, seller):  # noqa: F811
    with FaultProxy(chain_env.node.url) as proxy:
        settings.CHAINS = [{**settings.CHAINS[0], "rpc_url": proxy.url}]
        rpc.reset_clients()
        payment = start_payment(chain_order(buyer, seller), "crypto")
        (tx_hash,) = chain_env.send_requests(payment)
        payment = claim(payment, tx_hash)
        chain_env.node.mine(CONFIRMATIONS)

        # the node is down for a while: passes fail, back off, and move nothing
        proxy.fail_next(1000, 502)
        for _ in range(2):
            report = chain_poll(chain_env.chain_id, ignore_backoff=True)
            assert report.error and reload(payment).status == "processing"
            assert chain_poll(chain_env.chain_id).skipped == "backoff"
        # it recovers, still flaky (a few errors the client's retries absorb)
        proxy.clear_failures()
        proxy.fail_next(2, 502)
        report = chain_poll(chain_env.chain_id, ignore_backoff=True)
        assert not report.error and proxy.pending_failures == 0
        assert reload(payment).status == "confirmed"
        assert chain_poll(chain_env.chain_id).skipped == ""  # the backoff is cleared
        chain_env.poll()
    rpc.reset_clients()
    assert reload(payment).status == "confirmed" and confirms(payment) == 1


def test_two_pollers_started_together(chain_env, settings, buyer, seller):  # noqa: F811
    payments = []
    for _ in range(3):
        payment = start_payment(chain_order(buyer, seller, "ETH", "0.1"), "crypto")
        (tx_hash,) = chain_env.send_requests(payment)
        payments.append(claim(payment, tx_hash))
    chain_env.node.mine(CONFIRMATIONS)

    # Each RPC answer takes a moment, so the two passes overlap for sure.
    direct = settings.CHAINS
    with FaultProxy(chain_env.node.url, delay=0.2) as proxy:
        settings.CHAINS = [{**settings.CHAINS[0], "rpc_url": proxy.url}]
        rpc.reset_clients()
        barrier = threading.Barrier(2)
        reports: list = [None, None]

        def poller(i: int) -> None:
            barrier.wait(10)
            try:
                reports[i] = chain_poll(chain_env.chain_id, ignore_backoff=True)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=poller, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    settings.CHAINS = direct
    rpc.reset_clients()
    assert sorted(r.skipped for r in reports) == ["", "locked"]
    assert not any(r.error for r in reports)
    chain_env.poll()  # a later pass finds nothing more to do
    for payment in payments:
        assert reload(payment).status == "confirmed"
        assert confirms(payment) == 1
