"""The anvil peer keeps its block times on the wall clock across snapshots and reverts.

anvil puts its clock back to the snapshot's moment on a revert, so the next block is as far
in the past as the wall time that passed since the snapshot (measured: 4 s asleep, the next
block 5 s behind). The fixture sets the clock to now after each revert.
"""

from __future__ import annotations

import time

import pytest

from tests.peers.anvil import AnvilNode, anvil  # noqa: F401

pytestmark = pytest.mark.integration

ASLEEP = 4.0


def latest_timestamp(node: AnvilNode) -> int:
    return int(node.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def test_a_revert_leaves_block_times_on_the_wall_clock(anvil: AnvilNode) -> None:  # noqa: F811
    snapshot = anvil.snapshot()
    anvil.mine(50)
    time.sleep(ASLEEP)
    anvil.revert(snapshot)
    anvil.mine(1)
    # Block times are whole seconds: within 2.5 s of now, where an unset clock is >= 4 s behind.
    assert abs(latest_timestamp(anvil) - time.time()) < ASLEEP - 1.5
