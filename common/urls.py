"""The API's one URL scheme: every route answers with and without a trailing slash (two
patterns, ``name`` and ``name-slash``); the schema lists each once, without the slash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import URLPattern, path


def slash_optional(route: str, view: Callable[..., Any], name: str) -> list[URLPattern]:
    return [path(route, view, name=name), path(f"{route}/", view, name=f"{name}-slash")]
