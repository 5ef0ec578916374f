"""The schemathesis command line against a live server, once per role (buyer, seller, support),
with every phase including the stateful one that follows the schema's OpenAPI links, and with
its warnings made failures: an operation that mostly rejects generated data (the schema says
less than the API checks), only answers 404 (no way to reach real ids) or is mostly throttled
fails the run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.color import no_style
from django.db import connection
from rest_framework.authtoken.models import Token

from accounts.services import user_grant
from receipts.services import receipt_issue_for_payment
from tests.e2e.fuzz.conftest import SENT
from tests.factories import OrderFactory, SellerFactory, UserFactory
from tests.payments.api.conftest import pay

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20260501"))
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_ROLE_EXAMPLES", "8"))
STATEFUL_EXAMPLES = int(os.environ.get("SCHEMATHESIS_ROLE_SCENARIOS", "40"))

CONFIG = """
seed = {seed}
hooks = "tests.e2e.fuzz.schemathesis_hooks"
[warnings]
fail-on = true
[generation]
max-examples = {examples}
# A schema-valid request may still meet the state: 409 (a refund of an unpaid order, a
# dispute of an order without escrow) or 422 (a provider's refusal).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
[phases.stateful]
max-steps = 6
[phases.stateful.generation]
max-examples = {stateful_examples}
"""

#: Operations whose rules join several fields or the stored state in ways JSON Schema cannot
#: state: "schema-valid but refused" is not a failure there (the warning for an operation
#: that mostly refuses generated data still is). Each reason is tested in the API's tests.
RELATIONAL = {
    "orders_create": "decimals and maximum per currency; a seller is not the buyer; a chain "
    "accepts only its tokens",
    "payment_transactions_create": "the order's currency and outstanding amount",
    "payment_retry": "the failed attempt's method and state",
    "payment_refund": "decimals per currency; at most the refundable amount",
    "escrow_resolve_dispute": "the two parts add up to what the escrow holds",
    "payment_monitor_blockchain": "only a crypto or escrow payment takes a hash",
    "payment_analytics": "start is not after end; at most 366 days",
}


def config_text(ids: dict[str, str]) -> str:
    """The run's configuration: the seeded objects' ids for path parameters and as likely
    values of body fields (a random seller id or currency would make most orders invalid),
    the open order for starting payments, and the relational operations' exemption."""
    text = CONFIG.format(seed=SEED, examples=MAX_EXAMPLES, stateful_examples=STATEFUL_EXAMPLES)
    text += "".join(
        f'[dictionaries.{name}]\nvalues = ["{value}"]\n'
        for name, value in [
            ("sellers", ids["seller_id"]),
            ("currencies", "USD"),
            ("amounts", "10.00"),
        ]
    )
    text += "[parameters]\n" + "".join(
        f'{name} = "{ids[name]}"\n' for name in ("order_id", "transaction_id", "receipt_id")
    )
    for field, dictionary in [
        ("seller_id", "sellers"),
        ("currency", "currencies"),
        ("amount", "amounts"),
    ]:
        text += f'"body.{field}" = {{ dictionary = "{dictionary}", probability = 0.9 }}\n'
    for op in RELATIONAL:
        text += f'[[operations]]\ninclude-operation-id = "{op}"\n'
        text += "checks.positive_data_acceptance.enabled = false\n"
        if op in ("payment_transactions_create", "payment_retry"):
            text += f'parameters = {{ order_id = "{ids["open_order_id"]}" }}\n'
        if op == "payment_monitor_blockchain":
            text += (
                f'parameters = {{ transaction_id = "{ids["chain_transaction_id"]}", '
                f'order_id = "{ids["chain_order_id"]}" }}\n'
            )
    return text


#: What each role may do: its run covers these operations (the others answer it 403 only,
#: which the general schemathesis test covers).
ROLE_OPERATIONS = {
    "buyer": [
        "orders_list",
        "orders_create",
        "orders_retrieve",
        "payment_status",
        "payment_transactions_create",
        "payment_retry",
        "payment_monitor_blockchain",
        "escrow_confirm_delivery",
        "escrow_dispute",
        "receipts_pdf_retrieve",
        "receipts_verify_retrieve",
        "receipts_verify_create",
        "sellers_me_retrieve",
        "sellers_me_create",
    ],
    "seller": [
        "orders_list",
        "orders_retrieve",
        "payment_status",
        "payment_refund",
        "escrow_dispute",
        "receipts_pdf_retrieve",
        "sellers_me_retrieve",
        "sellers_me_create",
    ],
    "support": [
        "orders_list",
        "orders_retrieve",
        "payment_status",
        "payment_refund",
        "payment_transaction_status_update",
        "escrow_resolve_dispute",
        "payment_analytics",
        "receipts_pdf_retrieve",
    ],
}


def seed(role: str) -> tuple[str, dict[str, str]]:
    """The role's token, and the ids of objects it can reach (an open order, a paid order's
    payment and its receipt)."""
    # The coverage phase sends seller_id's boundary value, 1, with every other field's
    # variants: the seller is user 1 (the tables are empty in this transactional test).
    seller = SellerFactory(id=1, username="fuzz-seller")
    with connection.cursor() as cursor:  # the next users take ids after it, run alone too
        for sql in connection.ops.sequence_reset_sql(no_style(), [type(seller)]):
            cursor.execute(sql)
    buyer = UserFactory(username="fuzz-buyer")
    support = UserFactory(username="fuzz-support", is_staff=True)
    user_grant(
        support,
        "payments.refund_payment",
        "payments.review_payment",
        "payments.update_payment_status",
        "payments.view_paymenttransaction",
    )
    paid = OrderFactory(buyer=buyer, seller=seller)
    payment = pay(paid)
    receipt, _ = receipt_issue_for_payment(payment_id=payment.id)
    open_order = OrderFactory(buyer=buyer, seller=seller)
    chain_order = OrderFactory(buyer=buyer, seller=seller, currency="ETH", amount="0.5")
    chain_payment = pay(chain_order, confirm=False, method="crypto")
    user = {"buyer": buyer, "seller": seller, "support": support}[role]
    ids = {
        "order_id": str(paid.id),
        "transaction_id": str(payment.id),
        "receipt_id": str(receipt.id),
        "open_order_id": str(open_order.id),
        "seller_id": str(seller.pk),
        "chain_order_id": str(chain_order.id),
        "chain_transaction_id": str(chain_payment.id),
    }
    return Token.objects.create(user=user).key, ids


@pytest.mark.parametrize("role", ["buyer", "seller", "support"])
def test_every_role_runs_clean_with_warnings_as_failures(live_server, settings, tmp_path, role):
    settings.MEDIA_ROOT = tmp_path
    token, ids = seed(role)
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_text(ids))
    included = [arg for op in ROLE_OPERATIONS[role] for arg in ("--include-operation-id", op)]
    report = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{live_server.url}/api/schema/?format=json",
            "--url",
            live_server.url,
            "-H",
            f"Authorization: Token {token}",
            *included,
            "--report",
            os.environ.get("SCHEMATHESIS_ROLE_REPORTS", "junit"),
            "--report-dir",
            str(report),
            "--no-color",
        ],
        env={
            **os.environ,
            "ORDERPAY_FUZZ_BASE_URL": live_server.url,
            "ORDERPAY_FUZZ_TOKEN": token,
            "ORDERPAY_FUZZ_SELLER": ids["seller_id"],
            "ORDERPAY_FUZZ_OPEN_ORDER": ids["open_order_id"],
        },
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[3],
    )
    if os.environ.get("SCHEMATHESIS_ROLE_OUTPUT"):
        out = Path(os.environ["SCHEMATHESIS_ROLE_OUTPUT"])
        (out / f"{role}.txt").write_text(done.stdout)
        for file in report.iterdir():
            (out / f"{role}-{file.name}").write_bytes(file.read_bytes())
    generated = re.search(r"(\d+) generated", done.stdout)
    SENT[f"schemathesis-{role}"] += int(generated.group(1)) if generated else 0
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
