"""Writing down what has already happened outside the database (an email sent, a client
answered), across a dropped database connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

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
