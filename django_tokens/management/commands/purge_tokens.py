import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tokens.maintenance import purge


class Command(BaseCommand):
    help = (
        "Delete expired refresh tokens and sessions (and sessions revoked longer ago than an "
        "access token lives), in batches, and expired OAuth 2.0 codes and tokens; retire "
        "signing keys no token needs any more."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=5000,
            help="Rows deleted per statement (default 5000).",
        )
        parser.add_argument("--json", action="store_true", help="Print the counts as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be a positive number.")
        result = purge(batch_size=options["batch_size"])
        if options["json"]:
            self.stdout.write(json.dumps(result.counts))
            return
        for label, count in result.counts.items():
            self.stdout.write(f"{label}: {count}")
