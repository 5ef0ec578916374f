from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devtools.stripe_local import register_localstripe_webhook


class Command(BaseCommand):
    help = "Register our webhook endpoint with a localstripe on loopback (local development)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--api-base", default=None, help="default: STRIPE_API_BASE")
        parser.add_argument(
            "--webhook-url", default="http://127.0.0.1:8000/api/orders/payment/webhook"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        api_base = options["api_base"] or settings.STRIPE_API_BASE
        if not api_base:
            raise CommandError("STRIPE_API_BASE is unset: this command is for localstripe only.")
        if not settings.STRIPE_WEBHOOK_SECRET:
            raise CommandError("Set STRIPE_WEBHOOK_SECRET (any whsec_... value for localstripe).")
        try:
            register_localstripe_webhook(
                api_base, options["webhook_url"], settings.STRIPE_WEBHOOK_SECRET
            )
        except (OSError, ValueError) as exc:
            raise CommandError(f"Could not register with {api_base}: {exc}") from exc
        self.stdout.write(f"localstripe at {api_base} now calls {options['webhook_url']}")
