import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tokens.maintenance import reencrypt_secrets


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (signing keys' private halves, API-key secrets) under "
        "the newest key of DJANGO_TOKENS['ENCRYPTION_KEYS']. Idempotent; safe to re-run after "
        "an interruption. Keep the old key in the list until this has run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the counts as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        result = reencrypt_secrets()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "reencrypted": result.reencrypted,
                        "already_current": result.already_current,
                        "failed": result.failed,
                    }
                )
            )
        else:
            self.stdout.write(
                f"Re-encrypted: {result.reencrypted}; already current: {result.already_current}"
            )
        if result.failed:
            raise CommandError(
                f"{len(result.failed)} secret(s) could not be decrypted with any configured key: "
                + ", ".join(result.failed)
            )
