"""Hostile requests on the webhook endpoint (hypothesis).

Whatever the body, signature header, other headers, content type or size: the answer is 200
or 400 in the one error format, never a 5xx, and nothing is stored without a valid signature.
With a valid signature over a random JSON document: 200 or 400, never 5xx.
"""

from __future__ import annotations

import json
import time
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from payments.models import WebhookEvent
from payments.providers.stripe.client import sign_webhook_payload
from payments.webhooks.chain import sign as chain_sign
from payments.webhooks.inbox import MAX_BODY_BYTES
from tests.e2e.fuzz.conftest import SENT

URL = "/api/orders/payment/webhook"
STRIPE_SECRET = "whsec_fuzz_only"
CHAIN_SECRET = "chain_fuzz_only"
EXAMPLES = 150

pytestmark = pytest.mark.django_db

FUZZ = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run (the seed is the test's name)
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture(autouse=True)
def _secrets(settings):  # type: ignore[no-untyped-def]
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    settings.CHAIN_WEBHOOK_SECRET = CHAIN_SECRET


# --- strategies -----------------------------------------------------------------------------
# Header values travel as latin-1 in WSGI: any code point below 256.
header_text = st.text(st.characters(max_codepoint=255, exclude_categories=["Cs"]), max_size=120)
hexes = st.text("0123456789abcdef", min_size=0, max_size=70)
stamps = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.just(int(time.time())),
    st.integers(min_value=10**300, max_value=10**310),
    st.text("0123456789", min_size=1, max_size=5000),
)


@st.composite
def signature_values(draw: Any) -> str:
    """Stripe's and the chain's `t=..,v1=..` shape, broken in many ways, or anything."""
    t = draw(stamps)
    parts = [f"t={t}", f"v1={draw(hexes)}"]
    parts += draw(st.lists(st.sampled_from(["v0=00", "v1=", "t=", "=", ",", "v1=zz", "x"])))
    parts = draw(st.permutations(parts))
    shaped = ",".join(parts)
    return draw(st.one_of(st.just(shaped), header_text, st.just(shaped + draw(header_text))))


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),  # includes NUL and unpaired code points are excluded by json
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)


@st.composite
def event_objects(draw: Any) -> dict[str, Any]:
    """A JSON object, often shaped like an event (id, type, data.object) with random parts."""
    obj = draw(st.dictionaries(st.text(max_size=12), json_values, max_size=5))
    if draw(st.booleans()):
        obj["id"] = draw(st.one_of(st.text(max_size=300), json_values))
    if draw(st.booleans()):
        obj["type"] = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "payment_intent.succeeded",
                        "charge.refunded",
                        "charge.dispute.created",
                        "refund.updated",
                        "address_activity",
                    ]
                ),
                st.text(max_size=200),
                json_values,
            )
        )
    if draw(st.booleans()):
        obj["data"] = draw(st.one_of(json_values, st.fixed_dictionaries({"object": json_values})))
    if draw(st.booleans()):
        obj["transaction_hashes"] = draw(st.one_of(json_values, st.lists(hexes, max_size=3)))
    return obj


bodies = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=500).map(str.encode),
    event_objects().map(lambda o: json.dumps(o).encode()),
)
content_types = st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "*/*", "\x00"]
)
extra_headers = st.dictionaries(
    st.sampled_from(
        ["HTTP_X_REQUEST_ID", "HTTP_USER_AGENT", "HTTP_CONTENT_ENCODING", "HTTP_IDEMPOTENCY_KEY"]
    ),
    header_text,
    max_size=3,
)
SIGNATURE_KEYS = ["HTTP_STRIPE_SIGNATURE", "HTTP_X_CHAIN_SIGNATURE"]


def post(client: Any, body: bytes, content_type: str, meta: dict[str, str]) -> Any:
    SENT["webhook"] += 1
    return client.generic("POST", URL, body, content_type=content_type, **meta)


def assert_rejected_or_accepted(response: Any, *, allowed: tuple[int, ...]) -> None:
    assert response.status_code in allowed, (response.status_code, response.content[:500])
    if response.status_code != 200:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"}


# --- unsigned or badly signed: never stored ---------------------------------------------------
@FUZZ
@given(
    body=bodies,
    content_type=content_types,
    signatures=st.dictionaries(st.sampled_from(SIGNATURE_KEYS), signature_values(), max_size=2),
    extra=extra_headers,
)
def test_bad_signatures_are_400_and_store_nothing(client, body, content_type, signatures, extra):
    before = WebhookEvent.objects.count()
    response = post(client, body, content_type, {**extra, **signatures})
    assert_rejected_or_accepted(response, allowed=(400,))
    assert WebhookEvent.objects.count() == before


@FUZZ
@given(body=bodies, stamp=stamps, wrong=st.sampled_from(["secret", "body", "stamp"]))
def test_signatures_made_with_the_wrong_secret_body_or_stamp_are_refused(
    client, body, stamp, wrong
):
    """Well-formed signatures that do not match: the other secret, another body, another
    timestamp than the one signed."""
    now = int(time.time())
    secret = {"secret": "whsec_other"}.get(wrong, STRIPE_SECRET)
    signed_body = body + b" " if wrong == "body" else body
    header = sign_webhook_payload(signed_body.decode("latin-1"), secret, timestamp=now)
    chain = chain_sign(signed_body, "other" if wrong == "secret" else CHAIN_SECRET, now)
    if wrong == "stamp":
        header = header.replace(f"t={now}", f"t={stamp}")
        chain = chain.replace(f"t={now}", f"t={stamp}")
    before = WebhookEvent.objects.count()
    for key, value in (("HTTP_STRIPE_SIGNATURE", header), ("HTTP_X_CHAIN_SIGNATURE", chain)):
        response = post(client, body, "application/json", {key: value})
        assert_rejected_or_accepted(response, allowed=(400,))
    assert WebhookEvent.objects.count() == before


# --- validly signed random JSON: 200 or 400, never 5xx -----------------------------------------
@FUZZ
@given(obj=st.one_of(event_objects(), json_values), source=st.sampled_from(["stripe", "chain"]))
def test_validly_signed_random_json_is_200_or_400(client, obj, source):
    body = json.dumps(obj).encode()
    if source == "stripe":
        meta = {"HTTP_STRIPE_SIGNATURE": sign_webhook_payload(body.decode(), STRIPE_SECRET)}
    else:
        meta = {"HTTP_X_CHAIN_SIGNATURE": chain_sign(body, CHAIN_SECRET)}
    before = WebhookEvent.objects.count()
    response = post(client, body, "application/json", meta)
    assert_rejected_or_accepted(response, allowed=(200, 400))
    if response.status_code == 400:
        assert WebhookEvent.objects.count() == before
    else:
        assert WebhookEvent.objects.count() - before in (0, 1)  # 0: a duplicate id


# --- sizes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize(
    "size", [MAX_BODY_BYTES - 64, MAX_BODY_BYTES + 1, 1024 * 1024 + 1, 3 * 1024 * 1024]
)
def test_body_sizes_up_to_and_above_the_limit(client, size, signed):
    pad = "x" * max(0, size - 80)
    body = json.dumps(
        {"id": f"evt_size_{size}", "type": "ping", "data": {"object": {"pad": pad}}}
    ).encode()
    meta = {"HTTP_STRIPE_SIGNATURE": sign_webhook_payload(body.decode(), STRIPE_SECRET)}
    if not signed:
        meta["HTTP_STRIPE_SIGNATURE"] = meta["HTTP_STRIPE_SIGNATURE"][:-4] + "0000"
    response = post(client, body, "application/json", meta)
    if len(body) > MAX_BODY_BYTES:
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "payload_too_large"
        assert not WebhookEvent.objects.exists()
    else:
        assert response.status_code == (200 if signed else 400)
        assert WebhookEvent.objects.count() == (1 if signed else 0)


def signed(body: bytes, source: str) -> dict[str, str]:
    if source == "stripe":
        return {"HTTP_STRIPE_SIGNATURE": sign_webhook_payload(body.decode(), STRIPE_SECRET)}
    return {"HTTP_X_CHAIN_SIGNATURE": chain_sign(body, CHAIN_SECRET)}


EVENT = '{"id": "evt_x", "type": "payment_intent.succeeded", "data": {"object": %s}}'


@pytest.mark.parametrize("source", ["stripe", "chain"])
@pytest.mark.parametrize(
    "inner",
    [
        "[" * 50_000 + "]" * 50_000,  # deeper than any parser or database wants
        "[" * 65 + "]" * 65,
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -1e999}',
        '{"a": "\\u0000"}',  # NUL: PostgreSQL's jsonb refuses it
        '{"\\u0000": 1}',
        '{"a": "\\ud800"}',  # an unpaired surrogate: not UTF-8
        '{"a": 1' + "0" * 5000 + "}",
    ],
    ids=["deep", "65-deep", "nan", "inf", "-1e999", "nul", "nul-key", "surrogate", "5000-digit"],
)
def test_validly_signed_unstorable_json_is_400(client, source, inner):
    body = EVENT.replace("%s", inner).encode()
    response = post(client, body, "application/json", signed(body, source))
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] in ("invalid_payload", "malformed_payload")
    assert not WebhookEvent.objects.exists()


def test_validly_signed_nul_in_the_event_id_is_400(client):
    body = b'{"id": "evt_\\u0000", "type": "t", "data": {"object": {}}}'
    response = post(client, body, "application/json", signed(body, "stripe"))
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "data", ["[1]", '"x"', "1", "true", '{"object": [1]}', '{"object": null}', "[]", "{}"]
)
def test_validly_signed_stripe_event_with_a_malformed_data_is_400(client, data):
    body = EVENT.replace('{"object": %s}', data).encode()
    response = post(client, body, "application/json", signed(body, "stripe"))
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "invalid_payload"
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("source", ["stripe", "chain"])
def test_validly_signed_deeply_nested_json_is_400(client, source):
    body = b'{"id": "evt_deep", "a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    if source == "stripe":
        meta = {"HTTP_STRIPE_SIGNATURE": sign_webhook_payload(body.decode(), STRIPE_SECRET)}
    else:
        meta = {"HTTP_X_CHAIN_SIGNATURE": chain_sign(body, CHAIN_SECRET)}
    response = post(client, body, "application/json", meta)
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
