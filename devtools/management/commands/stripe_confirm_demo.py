"""Local development: confirm a card payment's PaymentIntent at localstripe with a test card,
as Stripe.js would in the buyer's browser. localstripe then sends its signed webhook."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devtools.stripe_local import TEST_CARD, confirm_with_test_card


class Command(BaseCommand):
    help = "Confirm a PaymentIntent at localstripe with a test card (what Stripe.js does)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("payment_intent_id")
        parser.add_argument("--card", default=TEST_CARD, help=f"test card (default {TEST_CARD})")

    def handle(self, *args: Any, **options: Any) -> None:
        api_base = settings.STRIPE_API_BASE
        if not api_base:
            raise CommandError(
                "STRIPE_API_BASE is unset: with real Stripe the browser confirms with Stripe.js."
            )
        try:
            answer = confirm_with_test_card(
                api_base, settings.STRIPE_SECRET_KEY, options["payment_intent_id"], options["card"]
            )
        except (OSError, ValueError) as exc:
            raise CommandError(f"Could not confirm at {api_base}: {exc}") from exc
        if "error" in answer:
            raise CommandError(json.dumps(answer["error"]))
        self.stdout.write(
            json.dumps({"id": answer.get("id"), "status": answer.get("status")}, indent=2)
        )
