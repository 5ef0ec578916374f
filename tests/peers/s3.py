"""An S3-compatible peer for the test suite: moto's server (PyPI), on a free loopback port.

``s3_server`` is a session-scoped fixture that yields the endpoint URL. It serves real S3 HTTP
(signed requests, buckets, objects) from a thread of the test process, so another process a
test starts (a worker, a web node) reaches the same buckets. ``s3_bucket`` makes an empty
bucket with a name of its own for one test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

#: moto accepts any credentials; boto3 still wants some to sign with.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "orderpay-test", "AWS_SECRET_ACCESS_KEY": "orderpay-test"}
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty bucket of this test's, with the credentials in the environment for boto3."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    name = f"receipts-{uuid.uuid4().hex[:12]}"
    s3_client(s3_server).create_bucket(Bucket=name)
    return name


def bucket_keys(endpoint: str, bucket: str) -> list[str]:
    listed = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))
