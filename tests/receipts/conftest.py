"""The S3-compatible peer (moto's server) for the receipt storage tests."""

from tests.peers.s3 import s3_bucket, s3_server  # noqa: F401
