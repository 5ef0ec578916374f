"""Database writes beyond the ORM's: what has already happened outside the database (an email
sent, a client answered) written down across a dropped connection, and many rows inserted or
updated at once (the set-based paths)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from django.core.exceptions import EmptyResultSet
from django.db import InterfaceError, OperationalError, connection, models, transaction
from django.db.models import Field, ForeignObject, Lookup, Model
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

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


class AnyOf(Lookup):
    """``field__any=values``: ``field = ANY(%s)`` with the values as one array parameter on
    PostgreSQL, a statement of the same short text whatever the number of values (an ``IN``
    of thousands has Django build, and psycopg parse, a placeholder for each: that cost more
    than the query in a set-based pass); ``IN (...)`` elsewhere. Values only (no subquery)."""

    lookup_name = "any"
    prepare_rhs = False

    def _values(self, connection: Any) -> list[Any]:
        field = self.lhs.output_field
        values = [field.get_db_prep_value(v, connection) for v in self.rhs if v is not None]
        if not values:
            raise EmptyResultSet
        return values

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        values = self._values(connection)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*params, *values]

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", [*params, self._values(connection)]


Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)  # related fields keep lookups of their own


#: fields whose Python values psycopg writes as they are (UUIDs, text, numbers, datetimes,
#: booleans, foreign keys to them): a COPY skips their per-value preparation, the rest (JSON)
#: goes through the field's own ``get_db_prep_save``
_AS_IS = (
    models.UUIDField,
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.DecimalField,
    models.DateTimeField,
    models.BooleanField,
    models.ForeignKey,
)


def _preparer(fields: Sequence[Field[Any, Any]]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    prepare = [
        None if isinstance(f, _AS_IS) else partial(f.get_db_prep_save, connection=connection)
        for f in fields
    ]

    def prepared(values: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            v if p is None or v is None else p(v) for p, v in zip(prepare, values, strict=True)
        )

    return prepared


def _copy(cursor: Any, target: str, names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """``COPY target (names) FROM STDIN``: rows streamed in one command, formatted by psycopg's
    compiled row writer (no statement text or parameters to build)."""
    with cursor.cursor.copy(f"COPY {target} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def insert_rows(
    model: type[Model], rows: Sequence[dict[str, Any]], *, ignore_conflicts: bool = False
) -> None:
    """New rows of ``model`` from {attname: value} (an omitted field takes its default): one
    ``COPY`` on PostgreSQL, where a set-based pass writes thousands of audit rows and building
    instances and an INSERT's parameters cost more than the database's own work;
    ``bulk_create`` elsewhere. ``ignore_conflicts``: a row a unique constraint already holds
    is skipped (copied into a temporary table first, then inserted ``ON CONFLICT DO
    NOTHING``)."""
    if not rows:
        return
    meta = model._meta
    fields: list[Field[Any, Any]] = [
        f for f in meta.concrete_fields if not (f.primary_key and isinstance(f, AutoFieldMixin))
    ]
    if connection.vendor != "postgresql":
        objs = [model(**{f.attname: r[f.attname] for f in fields if f.attname in r}) for r in rows]
        model._default_manager.bulk_create(objs, batch_size=500, ignore_conflicts=ignore_conflicts)
        return
    table = connection.ops.quote_name(meta.db_table)
    names = [connection.ops.quote_name(str(f.column)) for f in fields]
    prepared = _preparer(fields)
    now = timezone.now()
    stamped = {
        f.attname
        for f in fields
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    }
    values = (
        prepared(
            [
                r[f.attname] if f.attname in r else now if f.attname in stamped else f.get_default()
                for f in fields
            ]
        )
        for r in rows
    )
    if not ignore_conflicts:
        with connection.cursor() as cursor:
            _copy(cursor, table, names, values)
        return
    with _temporary(fields) as (cursor, temp, copied):
        _copy(cursor, temp, copied, values)
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(copied)} "  # noqa: S608
            f"FROM {temp} ON CONFLICT DO NOTHING"
        )


@contextmanager
def _temporary(fields: Sequence[Field[Any, Any]]) -> Iterator[tuple[Any, str, list[str]]]:
    """A temporary table with a column c0, c1 ... of each field's type, dropped on leaving:
    (cursor, its name, its column names). In a transaction (a savepoint if one is open)."""
    temp = f"rows_{uuid.uuid4().hex}"
    copied = [f"c{i}" for i in range(len(fields))]
    typed = ", ".join(f"{c} {f.db_type(connection)}" for c, f in zip(copied, fields, strict=True))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {temp} ({typed})")
        yield cursor, temp, copied
        cursor.execute(f"DROP TABLE {temp}")


def update_rows(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Set ``fields`` of many rows of ``model``, each row given as (pk, *values in the order of
    ``fields``). On PostgreSQL the values are copied (``COPY``) into a temporary table and
    applied by one ``UPDATE ... FROM`` it, instead of a CASE expression per field and row
    (whose building dominated a set-based pass); elsewhere one UPDATE per row."""
    if not rows:
        return 0
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    columns: list[Field[Any, Any]] = [meta.get_field(name) for name in fields]  # type: ignore[misc]
    if connection.vendor != "postgresql":
        manager = model._default_manager
        return sum(
            manager.filter(pk=row[0]).update(
                **{f.attname: v for f, v in zip(columns, row[1:], strict=True)}
            )
            for row in rows
        )
    table = connection.ops.quote_name(meta.db_table)
    names = [connection.ops.quote_name(str(f.column)) for f in columns]
    pk_name = connection.ops.quote_name(str(pk.column))
    assignments = ", ".join(f"{n} = v.c{i + 1}" for i, n in enumerate(names))
    with _temporary([pk, *columns]) as (cursor, temp, copied):
        _copy(cursor, temp, copied, map(_preparer([pk, *columns]), rows))
        cursor.execute(
            f"UPDATE {table} SET {assignments} FROM {temp} AS v "  # noqa: S608 (names quoted)
            f"WHERE {table}.{pk_name} = v.c0"
        )
        return int(cursor.rowcount)
