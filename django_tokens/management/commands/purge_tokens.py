import json
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from django_tokens.maintenance import purge
from django_tokens.management.base import TokensCommand


class Command(TokensCommand):
    help = (
        "Delete expired refresh tokens and sessions (and sessions revoked longer ago than an "
        "access token lives), expired OAuth 2.0 codes and tokens, and audit entries older "
        "than the retention, in batches; retire signing keys no token needs any more. "
        "Prints each count as it goes. Safe to run from cron at any time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=5000,
            help="Rows deleted per statement (default 5000).",
        )
        parser.add_argument(
            "--audit-older-than",
            type=int,
            metavar="DAYS",
            help="Delete audit entries older than this many days (default: "
            "DJANGO_TOKENS['AUDIT_RETENTION']; 0 keeps every entry).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the counts as one JSON object at the end."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be a positive number.")
        days = options["audit_older_than"]
        if days is not None and days < 0:
            raise CommandError("--audit-older-than must be zero or a positive number of days.")
        try:
            retention = timedelta(days=days) if days is not None else None
            if retention is not None:
                timezone.now() - retention
        except OverflowError:
            raise CommandError("--audit-older-than is too large.") from None
        result = purge(
            batch_size=options["batch_size"],
            audit_retention=retention,
            progress=None if options["json"] else self._print,
        )
        if options["json"]:
            self.stdout.write(json.dumps(result.counts))

    def _print(self, label: str, count: int) -> None:
        self.stdout.write(f"{label}: {count}")
        self.stdout.flush()
