"""Cross-process locks for chain work: one monitor pass per chain, one nonce at a time per
sending address. PostgreSQL advisory locks; elsewhere (SQLite) an atomic cache ``add``."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

from django.core.cache import cache
from django.db import connection


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def try_lock(name: str, *, timeout: int = 600) -> Iterator[bool]:
    """Yield True if this process now holds ``name``; False if someone else does."""
    if connection.vendor == "postgresql":
        key = _key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    cache_key = f"lock:{name}"
    acquired = bool(cache.add(cache_key, "1", timeout))
    try:
        yield acquired
    finally:
        if acquired:
            cache.delete(cache_key)


def xact_lock(name: str) -> None:
    """Hold ``name`` until the current transaction ends (PostgreSQL; SQLite serialises writes)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_key(name)])
