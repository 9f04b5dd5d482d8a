import json
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

from django_tokens import api_keys
from django_tokens.management.base import TokensCommand


class Command(TokensCommand):
    help = (
        "Issue an API key for a user. Prints the key id and the shared secret; the secret is "
        "shown this once and cannot be recovered later (rotate it instead)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username of the key's owner.")
        parser.add_argument("--name", required=True, help="A label for the key, e.g. ci-bot.")
        parser.add_argument(
            "--scopes",
            help='Space-separated scopes, e.g. "openid email" (default: '
            "DJANGO_TOKENS['API_KEY_SCOPES']).",
        )
        parser.add_argument(
            "--expires-in",
            type=int,
            metavar="DAYS",
            help="Days until the key expires (default: never).",
        )
        parser.add_argument(
            "--json", action="store_true", help='Print {"key_id": ..., "secret": ...}.'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        try:
            owner = users._default_manager.get_by_natural_key(options["user"])
        except users.DoesNotExist:
            raise CommandError(f"Unknown user: {options['user']!r}.") from None
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        days = options["expires_in"]
        if days is not None and days < 1:
            raise CommandError("--expires-in must be a positive number of days.")
        scopes = options["scopes"].split() if options["scopes"] is not None else None
        if scopes is not None and not scopes:
            raise CommandError("--scopes must name at least one scope.")
        try:
            issued = api_keys.issue(
                owner,
                name=name,
                scopes=scopes,
                expires_in=timedelta(days=days) if days is not None else None,
            )
        except OverflowError:
            raise CommandError("--expires-in is too large.") from None
        key = issued.api_key
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "key_id": key.key_id,
                        "secret": issued.secret,
                        "scope": key.scope,
                        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
                    }
                )
            )
            return
        self.stdout.write(
            f"Key id:  {key.key_id}\n"
            f"Secret:  {issued.secret}\n"
            f"Scopes:  {key.scope}\n"
            f"Expires: {key.expires_at.isoformat() if key.expires_at else 'never'}\n"
            "Store the secret now: it is not shown again."
        )
