"""Credentials kept out of django-oauth-toolkit's and oauthlib's debug logging.

At DEBUG level oauthlib logs the authorization codes it creates, the refresh tokens it checks
and the tokens it issues, and django-oauth-toolkit logs each redirect to a client with its
code. :data:`redact_credentials`, installed on their loggers when the app is ready, replaces
each such value with ``<redacted>`` and keeps the rest of the message. (A filter acts on the
records of the logger it is attached to, not of its children: so it goes on each of them.)
"""

from __future__ import annotations

import logging
import re

REDACTED = "<redacted>"

#: oauthlib's messages whose first argument is a refresh token as presented.
_REFRESH_TOKEN_FIRST = frozenset(
    {
        "Validating refresh token %s for client %r.",
        "Invalid refresh token, %s, for client %r.",
        "Refresh token %s lack requested scopes, %r.",
    }
)
_NAMES = (
    "access_token|refresh_token|id_token|token|code|code_verifier|client_secret|password|"
    "assertion|client_assertion"
)
#: A credential as the value of a dict's repr (``'code': '...'``) ...
_IN_REPR = re.compile(rf"(['\"](?:{_NAMES})['\"]\s*:\s*['\"])[^'\"]*")
#: ... or of a query string or form body (``?code=...``, ``&refresh_token=...``).
_IN_QUERY = re.compile(rf"((?:^|[?&#;\s\"'])(?:{_NAMES})=)[^&#;\s\"']*")


def redact(message: str) -> str:
    """``message`` with every credential value it names replaced by ``<redacted>``."""
    return _IN_QUERY.sub(rf"\1{REDACTED}", _IN_REPR.sub(rf"\1{REDACTED}", message))


class RedactCredentials(logging.Filter):
    """Rewrites a record's message without the credentials in it; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg in _REFRESH_TOKEN_FIRST and isinstance(args, tuple) and args:
            record.args = (REDACTED, *args[1:])
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the handler's to report
            return True
        redacted = redact(message)
        if redacted != message or record.args is not args:
            record.msg, record.args = redacted, ()
        return True


redact_credentials = RedactCredentials()

#: The libraries whose loggers get the filter.
LIBRARY_LOGGERS = ("oauthlib", "oauth2_provider")


def install() -> None:
    """Put the filter on every logger of oauthlib and django-oauth-toolkit. Their modules that
    log credentials are imported first, so that their loggers exist."""
    import oauthlib.oauth2
    import oauthlib.openid  # noqa: F401

    logging.getLogger("oauth2_provider")
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.split(".", 1)[0] in LIBRARY_LOGGERS:
            logger.addFilter(redact_credentials)
