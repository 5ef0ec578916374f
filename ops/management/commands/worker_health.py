"""A worker health check for orchestrators: exit 0 when enough Celery workers answer a ping
through the broker, 1 otherwise (a worker pointed at a wrong broker, or stuck, answers none)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Ping the Celery workers through the broker; exit 1 unless at least --min answer "
        "within --timeout seconds (--worker NAME asks that one only, e.g. celery@$HOSTNAME)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=2.0)
        parser.add_argument("--min", type=int, default=1, dest="minimum")
        parser.add_argument("--worker", action="append", default=[], dest="workers")

    def handle(self, *args: Any, **options: Any) -> None:
        from celery import current_app  # the project's app (config loads it with Django)

        try:
            replies = current_app.control.ping(
                timeout=options["timeout"], destination=options["workers"] or None
            )
        except Exception as exc:  # the broker itself is unreachable
            raise CommandError(
                f"no answer: the broker is unreachable ({type(exc).__name__})"
            ) from None
        names = sorted(name for reply in replies for name in reply)
        for name in names:
            self.stdout.write(f"{name}: ok")
        if len(names) < options["minimum"]:
            raise CommandError(
                f"{len(names)} worker(s) answered within {options['timeout']} s; "
                f"{options['minimum']} needed."
            )
