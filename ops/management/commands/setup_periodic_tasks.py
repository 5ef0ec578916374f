from django.core.management.base import BaseCommand

from ops.schedule import install_schedule


class Command(BaseCommand):
    help = (
        "Install the beat schedule (django-celery-beat). Idempotent: run it on every deploy. "
        "Intervals and enabled flags changed by staff in admin are kept unless --reset."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Restore every entry's default interval and enable it.",
        )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        result = install_schedule(reset=options["reset"])
        for what, names in result.items():
            for name in names:
                self.stdout.write(f"{what}: {name}")
        if not any(result.values()):
            self.stdout.write("schedule up to date")
