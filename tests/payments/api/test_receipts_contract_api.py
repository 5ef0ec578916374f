"""Receipt endpoints in the one error format, with the statuses their schema documents (found
by the schemathesis run in tests/fuzz)."""

from __future__ import annotations

import pytest

from tests.payments.api.conftest import error_code, openapi_schema

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("receipt_id", ["null", "not-a-uuid", "0" * 40])
def test_malformed_receipt_id_is_a_json_404(buyer_api, receipt_id):
    r = buyer_api.get(f"/api/receipts/{receipt_id}/pdf")
    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert error_code(r) == "receipt_not_found"


def test_receipt_errors_are_documented():
    paths = openapi_schema()["paths"]
    assert {"401", "404"} <= set(paths["/api/receipts/{receipt_id}/pdf"]["get"]["responses"])
    assert {"400", "429"} <= set(paths["/api/receipts/verify"]["get"]["responses"])
    assert {"400", "415", "429"} <= set(paths["/api/receipts/verify"]["post"]["responses"])


def test_verify_without_its_fields_is_400(api_for):
    r = api_for().get("/api/receipts/verify?number=")
    assert r.status_code == 400 and error_code(r) == "invalid_request"
