"""SQLite backend that keeps decimal amounts exact.

SQLite's NUMERIC affinity keeps 15 significant digits, which cannot hold an ETH amount in wei.
This backend stores DecimalField columns as text (declared ``decimal_text``, which has TEXT
affinity) and reads them back as exact Decimals. It is for the embedded development default;
production runs on PostgreSQL, whose ``numeric`` is exact.
"""

from decimal import Decimal

from django.db.backends.sqlite3 import base, operations


class DatabaseOperations(operations.DatabaseOperations):
    def get_decimalfield_converter(self, expression):  # type: ignore[no-untyped-def]
        float_converter = super().get_decimalfield_converter(expression)

        def converter(value, expression, connection):  # type: ignore[no-untyped-def]
            if isinstance(value, str):
                return Decimal(value)
            return float_converter(value, expression, connection)

        return converter


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    data_types = {**base.DatabaseWrapper.data_types, "DecimalField": "decimal_text"}
