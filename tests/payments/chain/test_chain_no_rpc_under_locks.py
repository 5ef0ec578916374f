"""No network call while holding row locks or inside a pass's transaction: platform
transactions are prepared (gas, fees, nonce) before the order's lock, signed and recorded
under it, and broadcast after the commit; the monitor re-broadcasts after its commit too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from orders.audit import Actor
from payments.models import ChainTransaction
from payments.providers.chain import client as rpc
from payments.services.escrow import escrow_release
from tests.payments.chain.conftest import chain_order
from tests.payments.chain.test_chain_escrow import held_escrow, settle

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rpc_calls(monkeypatch):  # type: ignore[no-untyped-def]
    """Every JSON-RPC method called, with whether a database transaction was open."""
    seen: list[tuple[str, bool]] = []
    real = rpc.ChainClient.call

    def call(self, method, params=None):  # type: ignore[no-untyped-def]
        seen.append((method, connection.in_atomic_block))
        return real(self, method, params) if params is not None else real(self, method)

    monkeypatch.setattr(rpc.ChainClient, "call", call)
    return seen


def test_release_asks_the_node_before_the_lock_and_sends_after_commit(
    chain_env, buyer, seller, rpc_calls
):
    order = chain_order(buyer, seller, "ETH", "1")
    held_escrow(chain_env, order)
    rpc_calls.clear()
    sent = escrow_release(order_id=order.id, actor=Actor.for_user(buyer))
    methods = [m for m, _ in rpc_calls]
    assert "eth_estimateGas" in methods and "eth_sendRawTransaction" in methods
    assert [m for m, in_tx in rpc_calls if in_tx] == []
    settle(chain_env)
    sent.refresh_from_db()
    assert sent.status == "confirmed"


def test_the_monitor_rebroadcasts_after_its_commit(chain_env, buyer, seller, rpc_calls):
    order = chain_order(buyer, seller, "ETH", "1")
    held_escrow(chain_env, order)
    chain_env.node.set_automine(False)
    sent = escrow_release(order_id=order.id, actor=Actor.for_user(buyer))
    chain_env.node.drop_transaction(sent.transaction_hash)  # the node lost it
    ChainTransaction.objects.filter(pk=sent.pk).update(
        updated_at=timezone.now() - timedelta(minutes=5)
    )
    rpc_calls.clear()
    chain_env.poll()
    assert ("eth_sendRawTransaction", False) in rpc_calls
    assert [m for m, in_tx in rpc_calls if in_tx] == []
    chain_env.node.set_automine(True)
    chain_env.node.mine(1)
    settle(chain_env)
    sent.refresh_from_db()
    assert sent.status == "confirmed"
