"""The anvil peer: a real local Ethereum node for the test suite.

``anvil`` is a session-scoped fixture. It starts the anvil binary on a free loopback
port, waits until it answers ``eth_chainId``, yields an :class:`AnvilNode`, and stops it
at the end of the session. Where no binary can be found the tests that use it skip.

The binary: ``$ANVIL_BIN``, else ``node_modules/.bin/anvil`` under the repository root
(``npm install`` from package.json), else ``anvil`` on PATH.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import HTTPProvider, Web3
from web3.types import TxParams

REPO_ROOT = Path(__file__).resolve().parents[2]

# anvil's default accounts come from this mnemonic (the well-known test one).
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_CHAIN_ID = 31337
START_TIMEOUT = 30.0


class AnvilRPCError(RuntimeError):
    """anvil answered a JSON-RPC request with an error."""


def find_anvil_binary() -> str | None:
    """``$ANVIL_BIN``, else node_modules/.bin/anvil in the repo, else ``anvil`` on PATH."""
    env = os.environ.get("ANVIL_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    local = REPO_ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    return shutil.which("anvil")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AnvilNode:
    """A running anvil: its URL, a web3 client, the unlocked accounts and test-chain controls."""

    url: str
    w3: Web3
    accounts: list[ChecksumAddress]
    process: subprocess.Popen[bytes]
    log_path: Path
    chain_id: int = ANVIL_CHAIN_ID
    _keys: dict[int, LocalAccount] = field(default_factory=dict, repr=False)

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Call a JSON-RPC method; returns its result, raises AnvilRPCError on an error."""
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in response:
            raise AnvilRPCError(f"{method}: {response['error']}")
        return response.get("result")

    def mine(self, n: int = 1) -> None:
        """Mine ``n`` blocks now (also with automine off)."""
        self.rpc("anvil_mine", [n])

    def snapshot(self) -> str:
        """Take a snapshot of the chain's state; returns its id for :meth:`revert`."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> bool:
        """Go back to a snapshot. anvil deletes the snapshot on use: take a new one after.

        anvil's clock falls behind the wall clock on a revert (seen: a snapshot, 10,000 blocks
        mined, a revert: the next block 110 s in the past); set it back to now, so block times
        and the database's clock keep agreeing however many tests ran before."""
        reverted = bool(self.rpc("evm_revert", [snapshot_id]))
        self.rpc("evm_setTime", [int(time.time())])
        return reverted

    def reorg(
        self, depth: int, txs: Sequence[tuple[TxParams | bytes | str, int]] | None = None
    ) -> None:
        """Replace the last ``depth`` blocks with new ones (the head's height stays the same).

        The transactions of the replaced blocks are dropped, not put back in the pool:
        afterwards the node knows neither them nor their receipts. ``txs`` puts
        transactions in the new blocks: pairs of (transaction, block index), the index
        counted from the first replaced block (0 = height ``head - depth + 1``). A
        transaction is a dict for an unlocked ``from`` (anvil signs it) or a signed raw
        transaction (bytes or 0x hex), which keeps its hash.
        """
        pairs: list[list[Any]] = []
        for tx, index in txs or ():
            if not 0 <= index < depth:
                raise ValueError(f"block index {index} is outside the reorg depth {depth}")
            pairs.append([_tx_for_rpc(tx), index])
        self.rpc("anvil_reorg", [depth, pairs])

    def set_automine(self, enabled: bool) -> None:
        """Mine a block per transaction (True, the default) or only on :meth:`mine` (False)."""
        self.rpc("evm_setAutomine", [enabled])

    def increase_time(self, seconds: int) -> None:
        self.rpc("evm_increaseTime", [seconds])

    def drop_transaction(self, tx_hash: bytes | str) -> None:
        """Remove a pending transaction from the pool (with automine off)."""
        self.rpc("anvil_dropTransaction", [_hex(tx_hash)])

    def local_account(self, index: int) -> LocalAccount:
        """The private-key account behind ``accounts[index]``, for signing locally."""
        if index not in self._keys:
            Account.enable_unaudited_hdwallet_features()
            self._keys[index] = Account.from_mnemonic(
                ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
            )
        return self._keys[index]

    def stop(self) -> None:
        _stop_process(self.process)


def _hex(value: bytes | str) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value if value.startswith("0x") else "0x" + value


def _tx_for_rpc(tx: TxParams | bytes | str) -> Any:
    if isinstance(tx, bytes | bytearray | str):
        return _hex(tx)
    out: dict[str, Any] = {}
    for key, value in dict(tx).items():
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = hex(value)
        elif isinstance(value, bytes | bytearray):
            out[key] = _hex(value)
        else:
            out[key] = value
    return out


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop anvil and anything it spawned (the npm wrapper runs the real binary as a child)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start_anvil(binary: str, log_path: Path, extra_args: Sequence[str] = ()) -> AnvilNode:
    """Start anvil on a free loopback port and wait until it answers eth_chainId."""
    last_error = "not started"
    for _attempt in range(3):  # a free port may be taken before anvil binds it
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [binary, "--host", "127.0.0.1", "--port", str(port), *extra_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stopped as a whole
            )
        w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                chain_id = w3.eth.chain_id
            except Exception as exc:  # not listening yet
                last_error = repr(exc)
                time.sleep(0.1)
                continue
            return AnvilNode(
                url=url,
                w3=w3,
                accounts=[Web3.to_checksum_address(a) for a in w3.eth.accounts],
                process=process,
                log_path=log_path,
                chain_id=chain_id,
            )
        _stop_process(process)
        last_error = f"exit code {process.returncode}; last error {last_error}"
    log_tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise RuntimeError(f"anvil did not start ({last_error}); log:\n{log_tail}")


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    """A real anvil for the whole session (chain id 31337, ten funded unlocked accounts)."""
    binary = find_anvil_binary()
    if binary is None:
        pytest.skip(
            "anvil not found: run `npm install` in the repository root "
            "(node_modules/.bin/anvil), or set ANVIL_BIN to an executable, or put anvil on PATH"
            + (
                f" (ANVIL_BIN={os.environ['ANVIL_BIN']!r} is not executable)"
                if "ANVIL_BIN" in os.environ
                else ""
            )
        )
    log_dir = Path(tempfile.mkdtemp(prefix="anvil-"))
    node = start_anvil(binary, log_dir / "anvil.log")
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
