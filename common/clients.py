"""Who is calling: the client address as the deployment's proxies define it."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's address as the proxy setting defines it (``NUM_PROXIES``, as the API's
    rate limits read it): REMOTE_ADDR, or the entry that many proxies from the right."""
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.NUM_PROXIES and forwarded:
        entries = [e.strip() for e in forwarded.split(",") if e.strip()]
        if entries:
            return entries[-min(settings.NUM_PROXIES, len(entries))]
    return remote
