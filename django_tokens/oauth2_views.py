"""OAuth 2.0 endpoints: django-oauth-toolkit's views, answering in seed 002's shapes."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as dot_views

from django_tokens import errors

logger = logging.getLogger(__name__)

#: The grants of SPEC §3 (seed 002). DOT's others are refused before it sees them: its
#: password grant would check user passwords without the throttles of ``POST /api/token``
#: (and RFC 9700 §2.4 forbids it); the device grant is not offered.
GRANT_TYPES = frozenset({"client_credentials", "authorization_code", "refresh_token"})


def oauth2_error(code: str, description: str, status: int | None = None) -> JsonResponse:
    status = status or errors.OAUTH2_STATUSES.get(code, 400)
    response = JsonResponse(errors.oauth2_body(code, description, status), status=status)
    for name, value in errors.NO_STORE.items():
        response[name] = value
    if status == 401:
        # RFC 6749 §5.2: a failed client authentication names the scheme to use.
        response["WWW-Authenticate"] = 'Basic realm="oauth2"'
    return response


def _reshape(response: HttpResponse) -> HttpResponse:
    """oauthlib's token response in the seed's shape: ``token_type`` "bearer"; errors in the
    dual envelope with SPEC §3's statuses."""
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if 200 <= response.status_code < 300:
        if "token_type" in body:
            body["token_type"] = str(body["token_type"]).lower()
        reshaped = JsonResponse(body, status=response.status_code)
        for name, value in errors.NO_STORE.items():
            reshaped[name] = value
        return reshaped
    code = str(body.get("error") or "invalid_request")
    description = str(body.get("error_description") or code.replace("_", " ").capitalize())
    return oauth2_error(code, description)


@method_decorator(csrf_exempt, name="dispatch")
class TokenView(dot_views.TokenView):
    """``POST /oauth2/token`` (``application/x-www-form-urlencoded``): client_credentials,
    authorization_code (with PKCE ``code_verifier``) and refresh_token grants."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = oauth2_error("invalid_request", "Use POST.", status=405)
            response["Allow"] = "POST"
            return response
        try:
            grant_type = request.POST.get("grant_type")
        except SuspiciousOperation:  # RequestDataTooBig, TooManyFieldsSent
            return oauth2_error("invalid_request", "The request body is too large.")
        if grant_type and grant_type not in GRANT_TYPES:
            return oauth2_error("unsupported_grant_type", "Unsupported grant type")
        try:
            return _reshape(super().dispatch(request, *args, **kwargs))
        except Exception:
            logger.exception("Unexpected error in the OAuth 2.0 token endpoint.")
            return oauth2_error("server_error", errors.ServerError.message)
