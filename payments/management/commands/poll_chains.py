"""One monitor pass over every configured chain (or one, with --chain); prints the reports."""

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand

from payments.chain.monitor import chain_poll, chain_poll_all


class Command(BaseCommand):
    help = "Run one chain monitor pass per configured chain and print what it did as JSON."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--chain", type=int, help="only this chain id")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        if options["chain"]:
            reports = [chain_poll(options["chain"], ignore_backoff=True)]
        else:
            reports = chain_poll_all()
        self.stdout.write(json.dumps([asdict(r) for r in reports], indent=2))
