"""The localstripe peer: a real Stripe-compatible server for the test suite.

``localstripe`` is a session-scoped fixture. It starts localstripe (PyPI, from the venv) on a
free loopback port, waits until it answers, yields a :class:`LocalStripe`, and stops it at the
end of the session. Tests call ``reset()`` (``DELETE /_config/data``) to start empty.

The server runs through ``python -m devtools.peers localstripe --port N`` (the launcher
`make run` uses too): the same localstripe application, bound to 127.0.0.1 only (its own
command binds every interface) and without its store file (its command pickles the store to
the shared /tmp/localstripe.pickle on every write, which two servers on one machine would
both use).

What localstripe does not do (checked against 1.15): it ignores idempotency keys; it has no
search API, no disputes, and no refund or ``payment_intent.processing/canceled/
requires_action`` events (only ``payment_intent.succeeded`` and ``.payment_failed``); every
refund succeeds at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
SECRET_KEY = "sk_test_orderpay_localstripe"
TEST_CARD = "4242424242424242"
#: Declined when charged (card_declined) by localstripe.
DECLINED_CARD = "4000000000000341"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalStripe:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    secret_key: str = SECRET_KEY

    def api(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        """A raw call to the Stripe API as a browser's Stripe.js or a test would make it."""
        response = requests.request(
            method,
            f"{self.url}{path}",
            data=data,
            headers={"Authorization": f"Bearer {self.secret_key}"},
            timeout=30,
        )
        return response.json() if response.content else None

    def reset(self) -> None:
        requests.delete(f"{self.url}/_config/data", timeout=30).raise_for_status()

    def register_webhook(self, url: str, secret: str, endpoint_id: str = "orderpay") -> None:
        requests.post(
            f"{self.url}/_config/webhooks/{endpoint_id}",
            data={"url": url, "secret": secret},
            timeout=30,
        ).raise_for_status()

    def payment_method(self, number: str = TEST_CARD) -> str:
        pm = self.api(
            "POST",
            "/v1/payment_methods",
            {
                "type": "card",
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
        )
        return str(pm["id"])

    def confirm_with_card(self, payment_intent_id: str, number: str = TEST_CARD) -> Any:
        """What Stripe.js does in the browser: attach a card and confirm. localstripe answers
        500 to ``confirm(payment_method=...)``, so the card is set first, then confirmed."""
        pm = self.payment_method(number)
        self.api("POST", f"/v1/payment_intents/{payment_intent_id}", {"payment_method": pm})
        return self.api("POST", f"/v1/payment_intents/{payment_intent_id}/confirm", {})

    def payment_intents(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/v1/payment_intents?limit=1000")["data"])

    def refunds(self, payment_intent_id: str) -> list[dict[str, Any]]:
        path = f"/v1/refunds?payment_intent={payment_intent_id}&limit=1000"
        return list(self.api("GET", path)["data"])

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/v1/events?type={event_type}&limit=1000")["data"])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_localstripe(log_path: Path) -> LocalStripe:
    last_error = "not started"
    for _attempt in range(3):  # a free port may be taken before the server binds it
        port = free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "devtools.peers", "localstripe", "--port", str(port)],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = LocalStripe(f"http://127.0.0.1:{port}", process, log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                node.api("GET", "/v1/payment_intents?limit=1")
            except requests.RequestException as exc:
                last_error = repr(exc)
                time.sleep(0.1)
                continue
            return node
        node.stop()
        last_error = f"exit code {process.returncode}; last error {last_error}"
    log_tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise RuntimeError(f"localstripe did not start ({last_error}); log:\n{log_tail}")


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    """A real localstripe for the whole session, on a free loopback port."""
    try:
        import localstripe as _package  # noqa: F401
    except ImportError:
        pytest.skip("localstripe is not installed: run `make install` (the dev extra)")
    log_dir = Path(tempfile.mkdtemp(prefix="localstripe-"))
    node = start_localstripe(log_dir / "localstripe.log")
    try:
        yield node
    finally:
        node.stop()
