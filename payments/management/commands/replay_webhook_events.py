from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from payments.models import WebhookEvent
from payments.services.expiry import webhook_events_to_sweep
from payments.webhooks.replay import webhook_replay


class Command(BaseCommand):
    help = "Process stored webhook events again: --failed (every failed one), --due, or --id."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--failed", action="store_true", help="every failed event")
        parser.add_argument(
            "--due", action="store_true", help="failed events past their backoff, lost enqueues"
        )
        parser.add_argument("--id", action="append", type=int, default=[], dest="ids")
        parser.add_argument("--provider", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        if not (options["failed"] or options["due"] or options["ids"]):
            raise CommandError("Say which events: --failed, --due or --id N (repeatable).")
        ids: list[int] = list(options["ids"])
        if options["failed"]:
            failed = WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED)
            if options["provider"]:
                failed = failed.filter(provider=options["provider"])
            ids += list(failed.order_by("received_at").values_list("id", flat=True))
        if options["due"]:
            due = webhook_events_to_sweep()
            if options["provider"]:
                due = list(
                    WebhookEvent.objects.filter(pk__in=due, provider=options["provider"])
                    .order_by("received_at")
                    .values_list("id", flat=True)
                )
            ids += due
        outcome = webhook_replay(dict.fromkeys(ids))
        for event_id, status in outcome.items():
            self.stdout.write(f"event {event_id}: {status}")
        failed_count = sum(1 for s in outcome.values() if s.startswith("failed"))
        self.stdout.write(f"{len(outcome)} replayed, {failed_count} failed")
