import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_tokens import keystore
from django_tokens.management.base import TokensCommand

#: Kids are RFC 7638 thumbprints: 43 base64url characters. No option of the command is this
#: long, so a string at least this long is taken for a kid even if it begins with "-".
MIN_KID_LENGTH = 20


class _KidParser(CommandParser):
    """A kid is base64url, so it may begin with "-": a long argument that names none of the
    command's options is the kid, not an unknown option."""

    def _parse_optional(self, arg_string: str) -> Any:
        name = arg_string.split("=", 1)[0]
        if len(arg_string) >= MIN_KID_LENGTH and name not in self._option_string_actions:
            return None  # positional
        return super()._parse_optional(arg_string)


class Command(TokensCommand):
    help = (
        "Retire a retiring signing key before its tokens have expired (for example when it "
        "may be compromised): it leaves the JWKS and verifies nothing more. Refused while "
        "valid tokens need it, saying which, unless --force. The active key must be rotated "
        "first (rotate_signing_key). purge_tokens retires keys on their own once unneeded."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = _KidParser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kid", help="The key id, as in the JWKS.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Retire it even though valid tokens need it: their access tokens are "
            "refused at once and API-key sessions must present a new assertion.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            impact = keystore.retire(options["kid"], force=options["force"])
        except keystore.KeyStillNeeded as exc:
            raise CommandError(f"{exc} Run again with --force to retire it anyway.") from exc
        except keystore.KeystoreError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "kid": impact.key.kid,
                        "state": impact.key.state,
                        "sessions_affected": impact.sessions,
                        "oauth2_tokens_affected": impact.oauth2_tokens,
                    }
                )
            )
            return
        self.stdout.write(f"Retired {impact.key.kid}: {impact.describe()}")
