"""What a parsed JSON body may hold before anything stores or walks it."""

from __future__ import annotations

import math
from typing import Any

#: The deepest nesting any request body (API or webhook) may have: an order's items need 3.
MAX_JSON_DEPTH = 64


def json_storage_problem(value: Any) -> str:
    """Why a parsed JSON document cannot be accepted ("" when it can): nested deeper than
    MAX_JSON_DEPTH, a NUL character or an unpaired surrogate in a string (neither PostgreSQL's
    jsonb nor UTF-8 holds them), or a number that is not finite (Python's json accepts NaN,
    Infinity and 1e999)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH}"
        if isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "an unpaired surrogate"
        elif isinstance(item, float) and not math.isfinite(item):
            return "a number that is not finite"
    return ""
