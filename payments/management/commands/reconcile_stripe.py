from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from payments.services.reconcile import reconcile_stripe


class Command(BaseCommand):
    help = (
        "Compare Stripe payments and refunds with Stripe: settle unknown outcomes, flag and "
        "report every difference."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--grace-seconds", type=int, default=None)
        parser.add_argument("--lookback-days", type=int, default=None)
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args: Any, **options: Any) -> None:
        differences = reconcile_stripe(
            grace_seconds=options["grace_seconds"], lookback_days=options["lookback_days"]
        )
        for difference in differences:
            line = json.dumps(difference.as_dict()) if options["json"] else str(difference)
            self.stdout.write(line)
        self.stdout.write(f"{len(differences)} difference(s)")
