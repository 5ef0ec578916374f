"""Writing down what has already happened outside the database (an email sent, a client
answered), across a dropped database connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connection
from django.db.models import Field, Model

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: How often such a write is tried: 4 times within 1.5 s.
ATTEMPTS = 4


def write_on_new_connection(write: Callable[[], T], *, what: str) -> T:
    """Run ``write`` (a statement in autocommit), again on a new connection if the database
    dropped the old one (a failover, a restart, ``pg_terminate_backend``). Inside a
    transaction it runs once: a new connection would silently leave the transaction."""
    for attempt in range(1, ATTEMPTS):
        try:
            return write()
        except (OperationalError, InterfaceError):
            if connection.in_atomic_block:
                raise
            logger.warning("%s: writing it again on a new database connection", what)
            connection.close()
            time.sleep(0.25 * attempt)
    return write()  # the last attempt: what it raises, the caller gets


def bulk_update_rows(model: type[Model], objs: Sequence[Model], fields: Sequence[str]) -> int:
    """``QuerySet.bulk_update`` for many rows and fields, fast on PostgreSQL: one
    ``UPDATE ... FROM (VALUES ...)`` statement per 1,000 rows instead of a CASE expression per
    field and row (whose building dominated a set-based pass). Other databases: bulk_update."""
    if not objs:
        return 0
    if connection.vendor != "postgresql":
        return model._default_manager.bulk_update(objs, list(fields), batch_size=500)
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    columns: list[Field[Any, Any]] = [meta.get_field(name) for name in fields]  # type: ignore[misc]
    table = connection.ops.quote_name(meta.db_table)
    names = [connection.ops.quote_name(str(f.column)) for f in columns]
    pk_name = connection.ops.quote_name(str(pk.column))
    row = "(" + ", ".join(f"%s::{f.db_type(connection)}" for f in (pk, *columns)) + ")"
    assignments = ", ".join(f"{n} = v.c{i}" for i, n in enumerate(names))
    aliases = ", ".join(["id", *(f"c{i}" for i in range(len(names)))])
    updated = 0
    with connection.cursor() as cursor:
        for offset in range(0, len(objs), 1000):
            chunk = objs[offset : offset + 1000]
            params: list[Any] = []
            for obj in chunk:
                params.append(pk.get_db_prep_value(obj.pk, connection))
                for f in columns:
                    value = getattr(obj, f.attname)
                    params.append(f.get_db_prep_save(value, connection))
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES "  # noqa: S608 (names quoted)
                + ", ".join([row] * len(chunk))
                + f") AS v({aliases}) WHERE {table}.{pk_name} = v.id",
                params,
            )
            updated += cursor.rowcount
    return updated
