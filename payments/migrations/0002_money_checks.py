"""On PostgreSQL, the database itself refuses impossible amounts: a payment is positive, its fee
within it, and its refunds never above it. (SQLite stores amounts as exact text, on which
such comparisons are not numeric; there the services' row-locked checks stand alone.)"""

from django.db import migrations

CHECKS = {
    "payments_paymenttransaction": [
        ("payment_amount_positive", "amount > 0"),
        ("payment_fee_within_amount", "fee_amount >= 0 AND fee_amount <= amount"),
        ("payment_refunds_within_amount", "refunded_amount >= 0 AND refunded_amount <= amount"),
    ],
    "payments_refund": [("refund_amount_positive", "amount > 0")],
}


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, checks in CHECKS.items():
        for name, condition in checks:
            schema_editor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition})")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, checks in CHECKS.items():
        for name, _ in checks:
            schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
