"""Receipts in an S3-compatible bucket (production's storage), against moto's real S3 server:
one object per receipt under its deterministic key, whatever crashes or renders again, and any
node reads the PDF from the bucket."""

from __future__ import annotations

import hashlib

import pytest
from django.db import transaction
from django.utils.module_loading import import_string
from rest_framework.test import APIClient

from config.settings.base import S3_STORAGE, receipts_storage_config
from receipts.models import PaymentReceipt, receipt_pdf_key
from receipts.services import receipt_regenerate, receipt_render
from tests.payflows import paid_card_payment
from tests.peers.s3 import REGION, bucket_keys, s3_client

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def bucket_storage(monkeypatch: pytest.MonkeyPatch, endpoint: str, bucket: str):  # type: ignore[no-untyped-def]
    """The storage production settings build for this bucket (a new client: another node)."""
    monkeypatch.setenv("RECEIPTS_S3_BUCKET", bucket)
    monkeypatch.setenv("RECEIPTS_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("RECEIPTS_S3_REGION", REGION)
    config = receipts_storage_config(S3_STORAGE)
    return import_string(config["BACKEND"])(**config["OPTIONS"])


@pytest.fixture
def in_bucket(monkeypatch, s3_server, s3_bucket):
    """Receipts stored in this test's bucket, as in production."""
    storage = bucket_storage(monkeypatch, s3_server, s3_bucket)
    monkeypatch.setattr(PaymentReceipt._meta.get_field("pdf"), "storage", storage)
    return storage


def receipt_of_paid_payment(order, capture) -> PaymentReceipt:  # type: ignore[no-untyped-def]
    """A card payment confirmed now, its receipt issued and rendered on commit."""
    with capture(execute=True):
        payment = paid_card_payment(order)
    return PaymentReceipt.objects.get(payment=payment)


def object_sha(endpoint: str, bucket: str, key: str) -> str:
    body = s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest()


def test_a_receipt_is_one_object_under_its_key_and_served_from_the_bucket(
    in_bucket,
    s3_server,
    s3_bucket,
    order,
    django_capture_on_commit_callbacks,
):
    receipt = receipt_of_paid_payment(order, django_capture_on_commit_callbacks)
    key = f"receipts/{receipt.year}/{receipt.number}.pdf"
    assert receipt.pdf.name == key == receipt_pdf_key(receipt)
    assert bucket_keys(s3_server, s3_bucket) == [key]
    assert object_sha(s3_server, s3_bucket, key) == receipt.sha256

    client = APIClient()
    client.force_authenticate(order.buyer)
    response = client.get(f"/api/receipts/{receipt.id}/pdf")
    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == receipt.sha256

    from orders.audit import Actor

    receipt_regenerate(receipt_id=receipt.id, actor=Actor.system())
    receipt_render(receipt_id=receipt.id, force=True)
    assert bucket_keys(s3_server, s3_bucket) == [key]  # rendered again: overwritten, no copies
    assert object_sha(s3_server, s3_bucket, key) == receipt.sha256


def test_a_render_killed_before_its_commit_leaves_no_copy(
    in_bucket,
    s3_server,
    s3_bucket,
    order,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    receipt = receipt_of_paid_payment(order, django_capture_on_commit_callbacks)
    s3_client(s3_server).delete_object(Bucket=s3_bucket, Key=receipt.pdf.name)
    PaymentReceipt.objects.filter(pk=receipt.pk).update(pdf="", sha256="")

    real_save = PaymentReceipt.save

    def killed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise SystemExit("killed after the PDF was written, before the row was")

    monkeypatch.setattr(PaymentReceipt, "save", killed)
    with pytest.raises(SystemExit), transaction.atomic():
        receipt_render(receipt_id=receipt.id)
    assert bucket_keys(s3_server, s3_bucket) == [receipt_pdf_key(receipt)]  # written, not kept
    assert PaymentReceipt.objects.get(pk=receipt.pk).sha256 == ""

    monkeypatch.setattr(PaymentReceipt, "save", real_save)
    rendered = receipt_render(receipt_id=receipt.id)
    assert bucket_keys(s3_server, s3_bucket) == [receipt_pdf_key(receipt)]  # the same key, once
    assert rendered.sha256 == receipt.sha256


def test_another_node_reads_the_pdf_from_the_bucket_and_a_lost_one_is_rendered_again(
    in_bucket,
    s3_server,
    s3_bucket,
    order,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    receipt = receipt_of_paid_payment(order, django_capture_on_commit_callbacks)

    other_node = bucket_storage(monkeypatch, s3_server, s3_bucket)  # its own client and session
    with other_node.open(receipt.pdf.name, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == receipt.sha256

    s3_client(s3_server).delete_object(Bucket=s3_bucket, Key=receipt.pdf.name)
    client = APIClient()
    client.force_authenticate(order.seller)
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        response = client.get(f"/api/receipts/{receipt.id}/pdf")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "receipt_not_ready"
    assert len(enqueued) == 1  # rendered again (eagerly here) into the bucket
    assert bucket_keys(s3_server, s3_bucket) == [receipt_pdf_key(receipt)]
    again = client.get(f"/api/receipts/{receipt.id}/pdf")
    assert again.status_code == 200
    assert hashlib.sha256(b"".join(again.streaming_content)).hexdigest() == receipt.sha256


def test_production_keeps_receipts_in_a_bucket_and_refuses_to_start_without_one(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.delenv("RECEIPTS_STORAGE_BACKEND", raising=False)
    monkeypatch.delenv("RECEIPTS_S3_BUCKET", raising=False)
    with pytest.raises(ImproperlyConfigured, match="RECEIPTS_S3_BUCKET"):
        receipts_storage_config(S3_STORAGE)
    monkeypatch.setenv("RECEIPTS_S3_BUCKET", "pay-receipts")
    config = receipts_storage_config(S3_STORAGE)
    assert config["BACKEND"] == "storages.backends.s3.S3Storage"
    assert config["OPTIONS"] == {
        "bucket_name": "pay-receipts",
        "endpoint_url": None,
        "region_name": None,
        "file_overwrite": True,
        "default_acl": None,
    }
    monkeypatch.setenv("RECEIPTS_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
    assert receipts_storage_config(S3_STORAGE)["OPTIONS"] == {"allow_overwrite": True}
