"""Liveness and readiness checks.

``/healthz`` says the process answers. ``/readyz`` checks what a request needs: the database,
the cache, the broker and each configured chain's RPC node; each check has its own status and
public reason (``timeout``, ``connection refused``, ``unreachable``, ``check failed``; the
error itself is logged, never answered: it may name hosts, users or URLs with keys).

Only what this node cannot serve without makes it not ready (503, so a load balancer stops
sending it traffic): the database, the cache and the broker. A chain node that is down is the
same for every node, and card payments and webhooks still work: the answer is 200 with
``"status": "degraded"`` and the failing check named, and ``orderpay_dependency_up`` says it
to Prometheus.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections

from payments.providers.chain.registry import all_chains

logger = logging.getLogger(__name__)


class CheckFailed(Exception):
    """A check's own finding, worded to be shown publicly (no host, user or URL in it)."""


def configured_chains() -> list[dict[str, Any]]:
    """The chains with an RPC URL, as the chain registry reads them from settings."""
    return [{"chain_id": c.chain_id, "rpc_url": c.rpc_url} for c in all_chains()]


def check_database() -> dict[str, Any]:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_cache() -> dict[str, Any]:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return the value just written")
    cache.delete(key)
    return {}


def check_broker() -> dict[str, Any]:
    from kombu import Connection

    timeout = settings.READINESS_TIMEOUT
    with Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=timeout,
        transport_options=dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})),
    ) as conn:
        conn.ensure_connection(max_retries=0, timeout=timeout)
        return {"transport": conn.transport_cls if isinstance(conn.transport_cls, str) else ""}


def check_chain(chain: dict[str, Any]) -> dict[str, Any]:
    """One ``eth_chainId`` call with a short timeout; the node must serve the chain we expect."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    url = chain["rpc_url"]
    if not url.startswith(("http://", "https://")):
        raise ValueError("the readiness check speaks JSON-RPC over HTTP(S) only")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    timeout = settings.READINESS_TIMEOUT
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        answer = json.loads(response.read())
    served = int(answer["result"], 16)
    if served != chain["chain_id"]:
        raise CheckFailed(f"the node serves chain {served}, not {chain['chain_id']}")
    return {"chain_id": served}


def public_reason(exc: BaseException) -> str:
    """What /readyz may say of a failure: a generic reason; the error itself (which may name
    hosts, users, databases or URLs with keys) goes to the server's log only."""
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError):
        return "unreachable"
    text = f"{type(exc).__name__} {exc}".lower()
    for words, reason in (
        (("timed out", "timeout"), "timeout"),
        (("refused",), "connection refused"),
        (("could not connect", "connection", "unreachable", "name or service"), "unreachable"),
    ):
        if any(w in text for w in words):
            return reason
    return "check failed"


def _run(name: str, check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        extra = check()
    except Exception as exc:
        logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return {
            "status": "fail",
            "error": public_reason(exc),
            "ms": round((time.monotonic() - started) * 1000),
        }
    return {"status": "ok", "ms": round((time.monotonic() - started) * 1000), **extra}


#: The checks without which this node cannot serve a request (the others degrade it).
ESSENTIAL = ("database", "cache", "broker")


def readiness() -> tuple[str, dict[str, dict[str, Any]]]:
    """``("ok" | "degraded" | "fail", checks)``: fail when an essential check fails, degraded
    when only others (the chain nodes) do."""
    checks: dict[str, dict[str, Any]] = {
        "database": _run("database", check_database),
        "cache": _run("cache", check_cache),
        "broker": _run("broker", check_broker),
    }
    for chain in configured_chains():
        name = f"chain:{chain['chain_id']}"
        checks[name] = _run(name, lambda c=chain: check_chain(c))
    for name, check in checks.items():
        check["essential"] = name in ESSENTIAL
    if any(checks[name]["status"] != "ok" for name in ESSENTIAL):
        return "fail", checks
    if any(c["status"] != "ok" for c in checks.values()):
        return "degraded", checks
    return "ok", checks
