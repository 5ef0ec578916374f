"""Cross-process locks: one monitor pass per chain, one nonce at a time per sending address,
one run at a time of each scheduled job. PostgreSQL advisory locks; elsewhere (SQLite) an
atomic cache ``add``."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import connection

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


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


def one_at_a_time(name: str) -> Callable[[F], F]:
    """A scheduled job that runs at most once at a time across every worker: a run that finds
    another one under way is skipped (returns None, logged). Two beats, or a slow run meeting
    the next tick, no longer run a reconciliation or a sweeper twice at once."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with try_lock(f"job:{name}", timeout=3600) as acquired:
                if not acquired:
                    logger.info("job %s skipped: another run holds its lock", name)
                    return None
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate
