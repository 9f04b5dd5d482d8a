"""API-facing errors: each class carries its code, status and default message.

Services raise these; views render them in one place (:func:`render`) in the envelope of the
service's wire format. Internal exceptions (``jws.InvalidSignedToken``,
``sessions.InvalidRefreshToken`` ...) are translated into these with ``from``.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse


class TokenServiceError(Exception):
    status = 500
    code = "server_error"
    message = "Unknown Error Occurred"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        if message is not None:
            self.message = message
        self.headers = dict(headers or {})
        super().__init__(self.message)


#: Seed 000's texts, used by the API-key service for every credential or refresh failure.
CREDENTIALS_MESSAGE = "Missing or invalid credentials"
REFRESH_MESSAGE = "Wrong or expired refresh token, or user/api-key removed"


class InvalidRequest(TokenServiceError):
    status = 400
    code = "invalid_request"
    message = "The request is malformed."


class InvalidCredentials(TokenServiceError):
    status = 401
    code = "invalid_credentials"
    message = "Invalid username or password."


class InvalidGrant(TokenServiceError):
    status = 401
    code = "invalid_grant"
    message = "The refresh token is invalid, expired or revoked."


class InvalidAccessToken(TokenServiceError):
    """A bearer access token that is missing, invalid, expired, revoked or of another service."""

    status = 401
    code = "invalid_token"
    message = "The access token is missing, invalid, expired or revoked."

    def __init__(self, message: str | None = None):
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="api"'})


class OriginNotAllowed(TokenServiceError):
    """A request that uses the refresh cookie from an origin that is not trusted."""

    status = 403
    code = "origin_not_allowed"
    message = (
        "The refresh cookie is only accepted from the API's own origin and the origins in "
        "CORS_ALLOWED_ORIGINS or CSRF_TRUSTED_ORIGINS."
    )


class NotFound(TokenServiceError):
    status = 404
    code = "not_found"
    message = "Not Found"


class MethodNotAllowed(TokenServiceError):
    status = 405
    code = "method_not_allowed"
    message = "Method not allowed."


class UnsupportedMediaType(TokenServiceError):
    status = 415
    code = "unsupported_media_type"
    message = "The request body must be JSON (Content-Type: application/json)."


class TooManyAttempts(TokenServiceError):
    status = 429
    code = "too_many_attempts"
    message = "Too many failed attempts. Try again later."

    def __init__(self, retry_after: int, message: str | None = None):
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = retry_after


class TemporarilyUnavailable(TokenServiceError):
    status = 503
    code = "temporarily_unavailable"
    message = "The service is temporarily unavailable. Try again shortly."


class ServerError(TokenServiceError):
    """Anything unexpected: the body never carries a traceback."""


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def simple_body(error: TokenServiceError) -> dict[str, Any]:
    """``{"error": code, "message": text}``: the envelope of SPEC §1 and §2."""
    return {"error": error.code, "message": error.message}


def render(error: TokenServiceError) -> JsonResponse:
    response = JsonResponse(simple_body(error), status=error.status)
    for name, value in {**NO_STORE, **error.headers}.items():
        response[name] = value
    return response


#: Statuses of RFC 6749 §5.2 error codes at the token endpoint (SPEC §3).
OAUTH2_STATUSES = {
    "invalid_client": 401,
    "unauthorized_client": 403,
    "access_denied": 403,
    "temporarily_unavailable": 503,
    "server_error": 500,
}


def oauth2_body(code: str, description: str, status: int) -> dict[str, Any]:
    """RFC 6749's ``error``/``error_description`` and seed 002's envelope, side by side, so
    that OAuth libraries and the seed's clients both read it."""
    return {
        "error": code,
        "error_description": description,
        "meta": {"pagination": {"limit": 0, "offset": 0, "total_count": 0}},
        "errors": [{"httpcode": status, "message": description}],
    }
