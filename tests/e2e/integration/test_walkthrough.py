"""The walkthrough (docs/walkthrough.md) against a real `make run`: card and ETH payments end
to end.

`make run` starts here as a developer starts it (embedded defaults: SQLite, no Redis, the
file-system broker; anvil, localstripe, setup, web, worker and beat under honcho), in its own
directory (ORDERPAY_VAR_DIR) and on free ports (WEB_PORT, STRIPE_PORT, ANVIL_PORT), so it never
touches a developer's `make run`. The steps are the walkthrough's: its HTTP calls made with
requests, its `manage.py` command run as a command. At the end it is stopped as Ctrl-C stops
it (SIGINT to make's process group), and every process honcho started must be gone; whatever is
left is killed, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.peers.anvil import find_anvil_binary
from tests.peers.localstripe import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
START_TIMEOUT = 120.0
#: Settings a developer's or CI's environment may carry that would point `make run` elsewhere.
CLEARED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "CHAIN_RPC_URL",
    "CHAIN_ID",
    "CHAINS_JSON",
    "ESCROW_CONTRACT_ADDRESS",
    "PAYMENT_CONTRACT_ADDRESS",
    "CHAIN_LEGACY_TRANSFERS",
    "ESCROW_OPERATOR_KEY",
    "ACCEPTED_TOKENS",
    "CRYPTO_RECEIVING_ADDRESS",
    "REQUIRED_CONFIRMATIONS",
    "CHAIN_DEV_DEPLOYMENT_FILE",
    "MEDIA_ROOT",
    "CELERY_TASK_ALWAYS_EAGER",
    "PAYMENT_PROVIDER_FIAT",
    "PAYMENT_PROVIDER_CRYPTO",
    "PAYMENT_PROVIDER_ESCROW",
)


@dataclass
class RunningSystem:
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    demo: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def manage(self, *args: str) -> str:
        """A `python manage.py ...` step of the walkthrough, in the system's environment."""
        done = subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def api(self, method: str, path: str, token: str, body: Any = None) -> Any:
        response = requests.request(
            method,
            self.demo["API"] + path,
            json=body,
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        )
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json()

    def order(self, amount: str, currency: str, description: str, method: str) -> Any:
        """The buyer's POST /api/orders with its first payment, as each section starts."""
        return self.api(
            "POST",
            "/api/orders",
            self.demo["BUYER"],
            {
                "seller_id": int(self.demo["SELLER_ID"]),
                "amount": amount,
                "currency": currency,
                "description": description,
                "payment_method": method,
            },
        )

    def rpc(self, method: str, params: list[Any]) -> Any:
        answer = requests.post(
            self.demo["RPC"],
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            timeout=30,
        ).json()
        assert "error" not in answer, answer
        return answer["result"]


def read_demo_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        values[key] = value
    return values


def started_pids(log: str) -> list[int]:
    """honcho's `NAME started (pid=N)` lines: each N leads its own process group."""
    return [int(pid) for pid in re.findall(r"started \(pid=(\d+)\)", log)]


def group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp
                members.append(int(stat.parent.name))
    return members


def wait_for(check: Callable[[], Any], what: str, timeout: float, system: RunningSystem) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; log tail:\n{system.log()[-4000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    if find_anvil_binary() is None:
        pytest.skip("anvil not found: run `make peers` (node_modules/.bin/anvil)")
    if not (VENV_BIN / "honcho").exists() or shutil.which("make") is None:
        pytest.skip("`make run` needs make and the venv's honcho: run `make install`")
    var_dir = tmp_path_factory.mktemp("make-run")
    log_path = var_dir / "make-run.log"
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        ORDERPAY_VAR_DIR=str(var_dir),
        WEB_PORT=str(free_port()),
        STRIPE_PORT=str(free_port()),
        ANVIL_PORT=str(free_port()),
        DEMO_PASSWORD="walkthrough-demo",
        PYTHONUNBUFFERED="1",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and honcho: the group a terminal's Ctrl-C reaches
        )
    system = RunningSystem(process, log_path, env, {})
    try:
        demo_env = var_dir / "demo.env"
        wait_for(
            lambda: demo_env.exists() or process.poll() is not None,
            "make run to finish its setup",
            START_TIMEOUT,
            system,
        )
        assert process.poll() is None, f"make run exited early:\n{system.log()[-4000:]}"
        system.demo = read_demo_env(demo_env)
        # setup writes demo.env, then prints its summary; honcho relays that output line by
        # line, so the banner's last line may reach the log a moment after the file exists.
        wait_for(
            lambda: "shell variables for the walkthrough" in system.log(),
            "the setup summary in the log",
            30,
            system,
        )
        wait_for(lambda: _answers(system.demo["API"] + "/healthz"), "the web process", 60, system)
        yield system
    finally:
        leftovers = stop(system)
    assert not leftovers, f"processes left after Ctrl-C: {leftovers}\n{system.log()[-3000:]}"


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def stop(system: RunningSystem) -> dict[int, list[int]]:
    """Ctrl-C: SIGINT to make's process group. Returns the process groups honcho started that
    still had members afterwards (then kills them)."""
    process = system.process
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    leftovers = {}
    deadline = time.monotonic() + 5
    for pgid in started_pids(system.log()):
        while (members := group_members(pgid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if members:
            leftovers[pgid] = members
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
    return leftovers


def payment_status(system: RunningSystem, order_id: str) -> dict[str, Any]:
    token = system.demo["BUYER"]
    return dict(system.api("GET", f"/api/orders/{order_id}/payment-status", token))


def test_make_run_prints_where_everything_is(make_run: RunningSystem) -> None:
    log = make_run.log()
    for user in ("admin", "support", "buyer", "seller"):
        assert re.search(rf"{user}\s+id=\d+\s+token=[0-9a-f]{{40}}", log), user
    assert "orderpay is running" in log
    for where in ("/admin/", "/api/docs/", "/admin/payments/paymenttransaction/analytics/"):
        assert make_run.demo["API"] + where in log
    # anvil's account 2 (the demo buyer) with its well-known key
    assert "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC" in log
    assert "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a" in log
    docs = requests.get(make_run.demo["API"] + "/api/docs/", timeout=10)
    assert docs.status_code == 200


def test_walkthrough_card_payment(make_run: RunningSystem) -> None:
    order = make_run.order("25.00", "USD", "Mug", "fiat")
    transaction = order["transaction"]
    assert order["status"] == "payment_pending" and transaction["status"] == "pending"
    pi_id = transaction["payment_intent_id"]
    assert pi_id.startswith("pi_") and transaction["client_secret"].startswith(pi_id)

    confirmed = make_run.manage("stripe_confirm_demo", pi_id)
    assert '"status": "succeeded"' in confirmed

    status = wait_for(
        lambda: (s := payment_status(make_run, order["id"]))["order_status"] == "paid" and s,
        "the card payment to be paid (localstripe's webhook, then the worker)",
        45,
        make_run,
    )
    assert status["payment_status"] == "confirmed"
    assert status["total_paid"] == "25.00" and status["outstanding_amount"] == "0.00"


def test_walkthrough_eth_payment(make_run: RunningSystem) -> None:
    demo = make_run.demo
    order = make_run.order("0.05", "ETH", "Sticker", "crypto")
    transaction = order["transaction"]
    instructions = transaction["payment_instructions"]
    assert instructions["chain_id"] == 31337 and instructions["token_address"] is None
    assert instructions["amount_base_units"] == str(5 * 10**16)
    assert instructions["scheme"] == "contract"
    [request] = instructions["transaction_requests"]
    assert request["to"] == instructions["contract_address"]

    # the wallet sends exactly the transaction request (anvil unlocks the demo buyer's account);
    # nothing is claimed: the contract's event names the payment
    make_run.rpc(
        "eth_sendTransaction",
        [
            {
                "from": demo["BUYER_WALLET"],
                "to": request["to"],
                "value": request["value_hex"],
                "data": request["data"],
            }
        ],
    )
    # anvil mines a block a second; beat's chain poll confirms at 3 confirmations
    status = wait_for(
        lambda: (s := payment_status(make_run, order["id"]))["order_status"] == "paid" and s,
        "the ETH payment to be paid (beat's chain poll)",
        45,
        make_run,
    )
    assert status["payment_status"] == "confirmed"
    assert status["transactions"][0]["confirmations"] >= 3

    # 3b: plain transfers to the payment's deposit address, in two parts, nothing claimed
    order = make_run.order("0.02", "ETH", "Badge", "crypto")
    deposit = order["transaction"]["payment_instructions"]["deposit_address"]

    def send(value: int) -> None:
        make_run.rpc(
            "eth_sendTransaction",
            [{"from": demo["BUYER_WALLET"], "to": deposit, "value": hex(value)}],
        )

    send(5 * 10**15)
    status = wait_for(
        lambda: (
            (s := payment_status(make_run, order["id"]))["payment_status"] == "partially_paid"
            and s["transactions"][0]["received_amount"] == "0.005000000000000000"
            and s
        ),
        "the first part to be received (beat's chain poll)",
        45,
        make_run,
    )
    assert status["order_status"] == "payment_pending"
    assert status["transactions"][0]["outstanding_amount"] == "0.015000000000000000"
    send(15 * 10**15)
    status = wait_for(
        lambda: (s := payment_status(make_run, order["id"]))["order_status"] == "paid" and s,
        "the deposit-address payment to be paid",
        45,
        make_run,
    )
    assert status["total_paid"] == "0.020000000000000000"


def test_walkthrough_token_payment(make_run: RunningSystem) -> None:
    """Section 3: the test token through the contract (approve, then pay), sent by the
    development command from the buyer's wallet; nothing claimed."""
    demo = make_run.demo
    order = make_run.order("12.50", "USDC", "Poster", "crypto")
    requests_ = order["transaction"]["payment_instructions"]["transaction_requests"]
    assert [r["description"].split()[0] for r in requests_] == ["approve", "pay"]
    out = make_run.manage("chain_pay", order["transaction"]["id"], "--from", demo["BUYER_WALLET"])
    assert len(json.loads(out)["transaction_hashes"]) == 2
    status = wait_for(
        lambda: (s := payment_status(make_run, order["id"]))["order_status"] == "paid" and s,
        "the token payment to be paid (beat's chain poll)",
        45,
        make_run,
    )
    assert status["payment_status"] == "confirmed" and status["total_paid"] == "12.500000"


def test_walkthrough_escrow_payment(make_run: RunningSystem) -> None:
    """Section 4: an escrow on EscrowV2, its deposit naming the buyer's wallet, sent by the
    development command; the monitor reads the Deposited event, nothing is claimed."""
    demo = make_run.demo
    order = make_run.api(
        "POST",
        "/api/orders",
        demo["BUYER"],
        {"seller_id": int(demo["SELLER_ID"]), "amount": "40.00", "currency": "USDC"},
    )
    payment = make_run.api(
        "POST",
        f"/api/orders/{order['id']}/payment-transactions",
        demo["BUYER"],
        {"payment_method": "escrow", "payer_address": demo["BUYER_WALLET"]},
    )
    instructions = payment["payment_instructions"]
    assert instructions["escrow_version"] == 2
    assert instructions["intent"]["payer"] == demo["BUYER_WALLET"].lower()
    make_run.manage("chain_pay", payment["id"])
    status = wait_for(
        lambda: (s := payment_status(make_run, order["id"]))["order_status"] == "paid" and s,
        "the escrow deposit to be held (beat's chain poll)",
        45,
        make_run,
    )
    assert status["payment_status"] == "confirmed" and status["total_paid"] == "40.000000"
