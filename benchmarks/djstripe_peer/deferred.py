"""The deferred callback: the trigger is stored and verified; an application would enqueue
its processing here. The benchmark measures the store-and-acknowledge path only."""

from __future__ import annotations

from typing import Any


def acknowledge(trigger: Any, api_key: str | None = None) -> None:
    return None
