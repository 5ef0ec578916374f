import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()


def _warm() -> None:
    """Import what the first request would otherwise import (every URL's view module, the
    webhook sources), so a worker (or, with preload, the master every worker forks from) is
    ready before it takes a request: a recycled worker answers its first request at full
    speed instead of stalling it for the imports."""
    from django.urls import get_resolver

    from payments.webhooks.inbox import webhook_sources

    get_resolver().url_patterns  # noqa: B018
    webhook_sources()


_warm()
