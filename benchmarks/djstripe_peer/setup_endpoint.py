"""Migrate the peer's database and create its webhook endpoint (the benchmark's signing
secret); print the endpoint's URL path. Run with the peer's virtualenv:

    python -m benchmarks.djstripe_peer.setup_endpoint <secret>
"""

from __future__ import annotations

import os
import sys
import uuid

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.djstripe_peer.settings")
    django.setup()
    from django.core.management import call_command
    from django.utils import timezone
    from djstripe.models import Account, APIKey, WebhookEndpoint

    call_command("migrate", verbosity=0, interactive=False)
    # The platform account, as dj-stripe keeps it after its first sync (localstripe has no
    # GET /v1/account): its API key belongs to it, so events are not held up asking Stripe.
    account, _ = Account.objects.get_or_create(id="acct_orderpaybench")
    key, _ = APIKey.objects.get_or_create_by_api_key(os.environ["DJSTRIPE_PEER_STRIPE_KEY"])
    key.djstripe_owner_account = account
    key.save()
    endpoint = WebhookEndpoint.objects.create(
        id=f"we_bench_{uuid.uuid4().hex[:16]}",
        livemode=False,
        created=timezone.now(),
        api_version="2024-06-20",
        enabled_events=["*"],
        secret=sys.argv[1],
        status="enabled",
        url="https://bench.invalid/stripe/webhook/",
        djstripe_uuid=uuid.uuid4(),
    )
    print(f"/stripe/webhook/{endpoint.djstripe_uuid}/")


if __name__ == "__main__":
    main()
