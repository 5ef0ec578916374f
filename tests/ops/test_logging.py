"""Structured JSON logs: every line carries the request id (and order/payment ids where
known); no secret value or card number reaches a log line."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import uuid

import pytest
from django.conf import settings
from django.test import override_settings

from common.logcontext import log_context
from ops.logging import redact

pytestmark = pytest.mark.django_db
SECRETS = {
    "STRIPE_SECRET_KEY": "sk_test_51HsEcReTvAlUe0123456789",
    "ESCROW_OPERATOR_KEY": "0x" + "ab" * 32,
}


@pytest.fixture
def json_logs():
    """The project's LOGGING with LOG_FORMAT=json, writing to a buffer."""
    stream = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["formatter"] = "json"
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    logging.config.dictConfig(settings.LOGGING)


@override_settings(ROOT_URLCONF="tests.ops.urls", **SECRETS)
def test_request_log_lines_are_json_with_ids_and_without_secrets(client, json_logs):
    order_id, payment_id = uuid.uuid4(), uuid.uuid4()
    response = client.get(
        f"/api/orders/{order_id}/payments/{payment_id}/log", HTTP_X_REQUEST_ID="req-0123456789"
    )
    assert response.status_code == 200 and response["X-Request-ID"] == "req-0123456789"
    records = [r for r in json_logs() if r["name"] == "orderpay.test"]
    assert len(records) == 2
    for record in records:
        assert record["request_id"] == "req-0123456789"
        assert record["order_id"] == str(order_id)
        assert record["payment_id"] == str(payment_id)
    assert "[CARD]" in records[0]["message"] and "[REDACTED]" in records[0]["message"]
    assert "exc_info" in records[1] and "[REDACTED]" in records[1]["exc_info"]
    text = json.dumps(json_logs())
    for secret in (settings.SECRET_KEY, *SECRETS.values(), "4242 4242 4242 4242"):
        assert secret not in text


def test_every_request_gets_an_id_and_its_django_lines_carry_it(client, json_logs):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32
    warning = next(r for r in json_logs() if r["name"] == "django.request")
    assert warning["request_id"] == request_id
    other = client.get("/no-such-page")["X-Request-ID"]
    assert other != request_id


def test_a_malformed_incoming_request_id_is_replaced(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"


def test_ids_bound_outside_requests_and_extra_fields_are_redacted(json_logs):
    logger = logging.getLogger("orderpay.job")
    with override_settings(**SECRETS), log_context(order_id="o-1", payment_id="p-1"):
        logger.warning(
            "job line",
            extra={"provider_answer": f"key={SECRETS['STRIPE_SECRET_KEY']} whsec_abcdefgh1234"},
        )
    record = json_logs()[-1]
    assert (record["order_id"], record["payment_id"]) == ("o-1", "p-1")
    assert SECRETS["STRIPE_SECRET_KEY"] not in record["provider_answer"]
    assert "whsec_abcdefgh1234" not in record["provider_answer"]
    logger.warning("after")
    assert json_logs()[-1]["payment_id"] == ""


def test_card_numbers_are_masked_only_when_they_are_card_numbers():
    assert redact("card 4000-0000-0000-0002 ok", []) == "card [CARD] ok"
    assert redact("card 5555555555554444", []) == "card [CARD]"
    # an order total or a block number that is not Luhn-valid stays
    assert redact("block 1234567890123", []) == "block 1234567890123"
    tx = "0x" + "12" * 32
    assert redact(f"tx {tx}", []) == f"tx {tx}"


def test_chain_wallet_broker_and_storage_secrets_are_redacted(json_logs, monkeypatch):
    """The payout key, chain webhook secret, RPC URLs (they carry API keys), Redis URL, and the
    secret fields of CHAINS (also a key named by *_key_env) and of the storage options."""
    receiving = "0x" + "12" * 20
    polygon_key = "0x" + "cd" * 32
    storage_secret = "s3-secret-AbCdEf0123456789"
    monkeypatch.setenv("POLYGON_OPERATOR_KEY", polygon_key)
    monkeypatch.setenv(
        "RECEIPTS_STORAGE_OPTIONS",
        json.dumps({"bucket_name": "rc", "secret_key": storage_secret, "access_key": "AKIA0123"}),
    )
    chains = [
        {
            "chain_id": 31337,
            "rpc_url": "https://eth.example/v3/rpc-api-key-0123456789",
            "operator_key": "0x" + "ab" * 32,
            "payout_key": "0x" + "ef" * 32,
            "receiving_address": receiving,
            "tokens": [{"symbol": "USDC", "address": "0x" + "34" * 20}],
        },
        {"chain_id": 137, "rpc_url": "https://polygon.example/k/poly-key-987654321",
         "operator_key_env": "POLYGON_OPERATOR_KEY"},
    ]  # fmt: skip
    secrets = {
        "PAYOUT_WALLET_KEY": "0x" + "99" * 32,
        "CHAIN_WEBHOOK_SECRET": "chain-hook-secret-0123",
        "REDIS_URL": "redis://:redis-pass-0123@cache.internal:6379/0",
    }
    values = [
        *secrets.values(),
        chains[0]["rpc_url"],
        chains[0]["operator_key"],
        chains[0]["payout_key"],
        chains[1]["rpc_url"],
        polygon_key,
        storage_secret,
        "AKIA0123",
    ]
    with override_settings(CHAINS=chains, **secrets):
        logging.getLogger("orderpay.job").warning(
            "values %s paid to %s", " ".join(values), receiving
        )
    record = json_logs()[-1]
    for value in values:
        assert value not in json.dumps(record), value
    assert receiving in record["message"]  # addresses are not secrets
    assert "0x" + "34" * 20 not in values


@pytest.mark.parametrize(
    "text",
    [
        "Your payment of 5.000000000000000000 DAI",
        "Refund of 25.000000000000000000 USD",
        "succeeded in 0.1234567890123456s",
        "amount 1,234567890123456",
        "message <20261202185612.1234567890123456@orderpay>",
        "event evt_1234567890123456789 and pi_4242424242424242",
        "order 0000000000000000 has no card",
    ],
)
def test_decimals_ids_and_message_ids_are_not_card_numbers(text):
    assert redact(text, []) == text


@pytest.mark.parametrize(
    "text",
    ["card 4242424242424242.", "card 4242 4242 4242 4242, ok", "(4000-0000-0000-0002)"],
)
def test_card_numbers_beside_punctuation_are_masked(text):
    assert "[CARD]" in redact(text, []) and "4242" not in redact(text, []).replace("[CARD]", "")
