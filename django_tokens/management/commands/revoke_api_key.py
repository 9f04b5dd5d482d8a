import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_tokens import api_keys
from django_tokens.management.base import TokensCommand


class Command(TokensCommand):
    help = (
        "Revoke an API key: its assertions are refused, every session opened with it stops "
        "refreshing, and their access tokens are refused by JWTAuthentication at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id", help="The key's public id.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            revoked_sessions = api_keys.revoke(options["key_id"])
        except api_keys.ApiKeyNotFound:
            raise CommandError(f"Unknown API key: {options['key_id']!r}.") from None
        if options["json"]:
            self.stdout.write(
                json.dumps({"key_id": options["key_id"], "sessions_revoked": revoked_sessions})
            )
            return
        self.stdout.write(
            f"Revoked {options['key_id']} and {revoked_sessions} session(s) opened with it."
        )
