from django.core.management.base import BaseCommand

from payments.services.retries import retry_pass


class Command(BaseCommand):
    help = (
        "Run one pass of the retry policy: reconcile payments whose outcome is unknown, "
        "schedule and run automatic retries of transient failures."
    )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        report = retry_pass().as_dict()
        for name, ids in report.items():
            self.stdout.write(f"{name}: {len(ids)}" + (f" ({', '.join(ids)})" if ids else ""))
