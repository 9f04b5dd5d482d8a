import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_tokens import keystore
from django_tokens.conf import SIGNING_ALGORITHMS
from django_tokens.management.base import TokensCommand


class Command(TokensCommand):
    help = (
        "Promote the pre-published next signing key to active (creating keys where none exist) "
        "and pre-publish a new next key. The previous active key stays in the JWKS until every "
        "token it signed has expired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--algorithm",
            choices=SIGNING_ALGORITHMS,
            help="Algorithm of the new keys (default: DJANGO_TOKENS['SIGNING_ALGORITHM']). "
            "If it differs from the next key's, a new key is activated at once.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rotation = keystore.rotate(options["algorithm"])
        except keystore.KeystoreError as exc:
            raise CommandError(str(exc)) from exc
        result = {
            "active": {"kid": rotation.active.kid, "algorithm": rotation.active.algorithm},
            "next": {"kid": rotation.next.kid, "algorithm": rotation.next.algorithm},
            "retiring": (
                {
                    "kid": rotation.retiring.kid,
                    "published_until": rotation.retiring.retire_after.isoformat()
                    if rotation.retiring.retire_after
                    else None,
                }
                if rotation.retiring
                else None
            ),
            "retired": rotation.retired,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"Active key: {rotation.active.kid} ({rotation.active.algorithm})\n"
            f"Next key:   {rotation.next.kid} ({rotation.next.algorithm})"
        )
        if rotation.retiring:
            self.stdout.write(
                f"Retiring:   {rotation.retiring.kid}, published until "
                f"{result['retiring']['published_until']}"  # type: ignore[index]
            )
