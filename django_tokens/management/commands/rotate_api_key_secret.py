import json
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_tokens import api_keys
from django_tokens.management.base import TokensCommand


class Command(TokensCommand):
    help = (
        "Give an API key a new shared secret, printed once. Assertions signed with the old "
        "secret keep working for the grace period, then stop."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id", help="The key's public id.")
        parser.add_argument(
            "--grace",
            type=int,
            default=0,
            metavar="SECONDS",
            help="How long the old secret keeps working (default 0: it stops at once).",
        )
        parser.add_argument(
            "--json", action="store_true", help='Print {"key_id": ..., "secret": ...}.'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["grace"] < 0:
            raise CommandError("--grace must be zero or a positive number of seconds.")
        try:
            issued = api_keys.rotate_secret(
                options["key_id"], grace=timedelta(seconds=options["grace"])
            )
        except api_keys.ApiKeyNotFound:
            raise CommandError(f"Unknown API key: {options['key_id']!r}.") from None
        except api_keys.ApiKeyNotLive:
            raise CommandError(
                f"API key {options['key_id']!r} is revoked or expired; issue a new key."
            ) from None
        except OverflowError:
            raise CommandError("--grace is too large.") from None
        key = issued.api_key
        until = key.previous_secret_expires_at
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "key_id": key.key_id,
                        "secret": issued.secret,
                        "previous_secret_valid_until": until.isoformat() if until else None,
                    }
                )
            )
            return
        self.stdout.write(
            f"Key id:  {key.key_id}\n"
            f"Secret:  {issued.secret}\n"
            + (
                f"The old secret works until {until.isoformat()}.\n"
                if until
                else "The old secret no longer works.\n"
            )
            + "Store the secret now: it is not shown again."
        )
