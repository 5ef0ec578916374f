"""SQLite backend that keeps decimal amounts exact.

SQLite's NUMERIC affinity keeps 15 significant digits, which cannot hold an ETH amount in wei.
This backend stores DecimalField columns as text (declared ``decimal_text``, which has TEXT
affinity) and reads them back as exact Decimals. It is for the embedded development default;
production runs on PostgreSQL, whose ``numeric`` is exact.

On SQLite, amounts compare and sort as text, and SQL arithmetic on them (SUM, AVG) would be
floating point: this backend refuses such a float rather than hand back an inexact Decimal.
"""

from decimal import Decimal

from django.db.backends.sqlite3 import base, operations


class DatabaseOperations(operations.DatabaseOperations):
    def get_decimalfield_converter(self, expression):  # type: ignore[no-untyped-def]
        float_converter = super().get_decimalfield_converter(expression)

        def converter(value, expression, connection):  # type: ignore[no-untyped-def]
            if isinstance(value, str):
                return Decimal(value)
            if isinstance(value, int) and not isinstance(value, bool):
                return Decimal(value)
            if isinstance(value, float):
                # SQLite computed this (SUM, AVG, arithmetic on the text column) in floating
                # point: the exact amount is lost. Aggregate amounts in Python instead.
                raise TypeError(
                    "SQLite returned a float for a decimal expression; money is never float. "
                    "Sum amounts in Python (orders.money.add) rather than in SQL on SQLite."
                )
            return float_converter(value, expression, connection)

        return converter


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    data_types = {**base.DatabaseWrapper.data_types, "DecimalField": "decimal_text"}
