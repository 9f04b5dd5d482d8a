import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_tokens.maintenance import reencrypt_secrets
from django_tokens.management.base import TokensCommand


class Command(TokensCommand):
    help = (
        "Re-encrypt every stored secret (signing keys' private halves, API-key secrets) under "
        "the newest key of DJANGO_TOKENS['ENCRYPTION_KEYS']. Idempotent; safe to re-run after "
        "an interruption. Keep the old key in the list until this has run. With --verbosity 2 "
        "it names each row as it is rewritten."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the counts as JSON.")

    def _print(self, label: str) -> None:
        self.stdout.write(f"re-encrypted {label}")
        self.stdout.flush()

    def handle(self, *args: Any, **options: Any) -> None:
        result = reencrypt_secrets(
            progress=self._print if options["verbosity"] >= 2 and not options["json"] else None
        )
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
