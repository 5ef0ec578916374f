"""Local development against localstripe: register our webhook endpoint with it.

localstripe (a Stripe-compatible test server) takes webhook endpoints at
``POST /_config/webhooks/<id>`` with form fields ``url`` and ``secret``; it then signs every
event it sends with that secret, as Stripe does.
"""

from __future__ import annotations

import urllib.parse
import urllib.request


def register_localstripe_webhook(
    api_base: str, url: str, secret: str, endpoint_id: str = "orderpay", timeout: float = 10
) -> None:
    if not api_base.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise ValueError("Only a localstripe on loopback takes a webhook registration here.")
    body = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    request = urllib.request.Request(  # noqa: S310 (loopback URL checked above)
        f"{api_base.rstrip('/')}/_config/webhooks/{urllib.parse.quote(endpoint_id)}",
        data=body,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read()
