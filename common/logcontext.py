"""The ids every log line carries: request (or task) id, order id and payment id.

They live in context variables so that any code (services, tasks, providers) can bind them
without passing them around; the logging filter in ``ops.logging`` copies them onto records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
order_id_var: ContextVar[str] = ContextVar("order_id", default="")
payment_id_var: ContextVar[str] = ContextVar("payment_id", default="")
#: the client address of the request being served (security events read it; not logged)
client_ip_var: ContextVar[str] = ContextVar("client_ip", default="")

_VARS = {"request_id": request_id_var, "order_id": order_id_var, "payment_id": payment_id_var}


def current() -> dict[str, str]:
    return {name: var.get() for name, var in _VARS.items()}


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Bind ``request_id``, ``order_id`` and/or ``payment_id`` for the block's log lines."""
    tokens = [(_VARS[name], _VARS[name].set(str(value))) for name, value in ids.items() if value]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
