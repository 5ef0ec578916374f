"""The anvil peer keeps its block times on the wall clock across snapshots and reverts."""

from __future__ import annotations

import time

import pytest

from tests.peers.anvil import AnvilNode, anvil  # noqa: F401

pytestmark = pytest.mark.integration


def latest_timestamp(node: AnvilNode) -> int:
    return int(node.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def test_a_revert_leaves_block_times_on_the_wall_clock(anvil: AnvilNode) -> None:  # noqa: F811
    snapshot = anvil.snapshot()
    anvil.mine(5000)
    anvil.revert(snapshot)
    time.sleep(1.5)
    anvil.mine(1)
    assert abs(latest_timestamp(anvil) - time.time()) < 30
