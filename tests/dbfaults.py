"""Database faults for tests: PostgreSQL drops this thread's connection, as a failover or an
operator's ``pg_terminate_backend`` does."""

from __future__ import annotations

import time

from django.db import connection, connections


def terminate_this_connection() -> None:
    """Terminate this thread's database backend from another session; return once it has
    gone, so the next statement on this connection fails."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _ in range(100):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                if cursor.fetchone()[0] == 0:
                    return
                time.sleep(0.05)
        raise AssertionError(f"backend {pid} still there")
    finally:
        other.close()
