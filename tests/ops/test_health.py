"""/healthz and /readyz: per-check status, and 503 when a dependency is down."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.conf import settings
from django.test import override_settings

from ops.health import configured_chains

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeRPC(BaseHTTPRequestHandler):
    chain_id = 31337

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": hex(self.chain_id)})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def rpc_server():
    server = HTTPServer(("127.0.0.1", 0), FakeRPC)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_healthz_says_the_process_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


def test_readyz_passes_with_every_dependency_up(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {k: v["status"] for k, v in body["checks"].items()} == {
        "database": "ok",
        "cache": "ok",
        "broker": "ok",
    }


def test_readyz_fails_when_the_cache_is_down(client):
    port = closed_port()
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    with override_settings(CACHES=caches):
        response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503, body
    assert body["checks"]["cache"]["status"] == "fail"
    assert body["checks"]["database"]["status"] == "ok"


def test_readyz_does_not_leak_the_database_error(client, monkeypatch, caplog):
    from django.db import OperationalError

    from ops import health

    secret = (
        'connection to server at "db-7.internal" (10.0.0.5), port 5432 failed: FATAL: '
        'password authentication failed for user "orderpay_admin" database "orderpay_live"'
    )

    def broken() -> None:
        raise OperationalError(secret)

    monkeypatch.setattr(health, "check_database", broken)
    with caplog.at_level("WARNING", logger="ops.health"):
        response = client.get("/readyz")
    assert response.status_code == 503
    check = response.json()["checks"]["database"]
    assert check["status"] == "fail" and check["error"] in ("unreachable", "check failed")
    for leak in ("db-7.internal", "10.0.0.5", "orderpay_admin", "orderpay_live", "Operational"):
        assert leak not in response.content.decode()
    assert any("db-7.internal" in r.getMessage() for r in caplog.records)  # logged server-side


def test_readyz_fails_when_the_broker_is_down(client):
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503, body
    assert body["status"] == "fail"
    assert body["checks"]["broker"]["status"] == "fail"
    assert body["checks"]["broker"]["error"] == "connection refused"


def test_readyz_checks_each_chain_rpc(client, rpc_server):
    chains = [
        {"chain_id": 31337, "rpc_url": rpc_server},
        {"chain_id": 5, "rpc_url": f"http://127.0.0.1:{closed_port()}"},
    ]
    with override_settings(CHAINS=chains):
        response = client.get("/readyz")
    body = response.json()
    assert body["checks"]["chain:31337"]["status"] == "ok"
    assert body["checks"]["chain:5"]["status"] == "fail"
    assert body["checks"]["chain:5"]["essential"] is False


def test_a_chain_node_down_degrades_the_node_but_keeps_it_ready(client):
    """Every web node sees the same chain node: a 503 would take card payments and webhooks
    down with it. 200, degraded, the check named; and a gauge for Prometheus."""
    with override_settings(
        CHAINS=[{"chain_id": 5, "rpc_url": f"http://127.0.0.1:{closed_port()}"}]
    ):
        response = client.get("/readyz")
        metrics = client.get("/metrics").content.decode()
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded", body
    assert body["checks"]["chain:5"]["status"] == "fail"
    assert body["checks"]["database"]["essential"] is True
    assert 'orderpay_dependency_up{check="chain:5",essential="false"} 0.0' in metrics
    assert 'orderpay_dependency_up{check="database",essential="true"} 1.0' in metrics


def test_readyz_fails_when_the_node_serves_another_chain(client, rpc_server):
    with override_settings(CHAINS=[{"chain_id": 1, "rpc_url": rpc_server}]):
        body = client.get("/readyz").json()
    assert body["checks"]["chain:1"]["status"] == "fail"
    assert "serves chain 31337" in body["checks"]["chain:1"]["error"]


def test_readiness_checks_the_chains_of_the_registry():
    with override_settings(
        CHAINS=[
            {"chain_id": 1, "rpc_url": "http://a"},
            {"chain_id": 7, "rpc_url": ""},  # no RPC URL: not configured
        ]
    ):
        assert configured_chains() == [{"chain_id": 1, "rpc_url": "http://a"}]
    with override_settings(CHAINS=[]):
        assert configured_chains() == []


@pytest.mark.integration
def test_readyz_against_a_real_anvil_node(client, anvil):
    with override_settings(CHAINS=[{"chain_id": anvil.chain_id, "rpc_url": anvil.url}]):
        response = client.get("/readyz")
    assert response.json()["checks"][f"chain:{anvil.chain_id}"]["status"] == "ok"


@pytest.mark.postgres
def test_readyz_on_postgres_and_redis_when_configured(client):
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL not set: the cache and broker are in-process here")
    body = client.get("/readyz").json()
    assert body["status"] == "ok", body
