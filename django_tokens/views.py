"""HTTP views: parse the request, call a service, render the result or the error.

Every error of these endpoints, expected or not, leaves through
:meth:`TokenAPIView.handle_exception` as the service's JSON envelope: never a traceback or an
HTML page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_tokens import audit, errors, keystore
from django_tokens.conf import token_settings
from django_tokens.responses import keycloak_token_body, password_token_body
from django_tokens.services import api_key, password
from django_tokens.throttling import address_of
from django_tokens.tokens import issuer_for

logger = logging.getLogger(__name__)

#: Longest username or password accepted; longer input is malformed, not a wrong password.
MAX_CREDENTIAL_LENGTH = 4096
#: JSON escapes such as ``\ud800`` can produce lone surrogates, which no UTF-8 text contains.
_SURROGATE = re.compile("[\ud800-\udfff]")


class TokenJSONParser(JSONParser):
    """DRF's JSON parser; a body nested too deeply to parse is malformed, not a server error."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise drf_exceptions.ParseError("JSON nested too deeply.") from exc


class JSONOnlyNegotiation(DefaultContentNegotiation):
    """Token endpoints answer JSON whatever the client's ``Accept`` header says."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


def _as_service_error(exc: Exception) -> errors.TokenServiceError:
    if isinstance(exc, errors.TokenServiceError):
        return exc
    if isinstance(exc, drf_exceptions.ParseError):
        return errors.InvalidRequest("The request body is not valid JSON.")
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return errors.UnsupportedMediaType()
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return errors.MethodNotAllowed()
    if isinstance(exc, Http404 | drf_exceptions.NotFound):
        return errors.NotFound()
    logger.error("Unexpected error in a token endpoint.", exc_info=exc)
    return errors.ServerError()


class TokenAPIView(APIView):
    """Base of the token endpoints: JSON in and out, no session auth, one error boundary."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    parser_classes = [TokenJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation
    #: Token responses must not be cached (RFC 6749 §5.1).
    no_store = True

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with audit.context(ip=address_of(request)):
            return super().dispatch(request, *args, **kwargs)

    def handle_exception(self, exc: Exception) -> Response:
        error = _as_service_error(exc)
        headers = dict(error.headers)
        if isinstance(error, errors.MethodNotAllowed):
            headers["Allow"] = ", ".join(self.allowed_methods)
        return Response(errors.simple_body(error), status=error.status, headers=headers)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.no_store:
            for name, value in errors.NO_STORE.items():
                response[name] = value
        return response

    @staticmethod
    def json_object(request: Request) -> Mapping[str, Any]:
        data = request.data
        if not isinstance(data, Mapping):
            raise errors.InvalidRequest("The request body must be a JSON object.")
        return data

    @staticmethod
    def client_ip(request: Request) -> str | None:
        return address_of(request)


def _text_field(value: Any, name: str, invalid: errors.TokenServiceError | None = None) -> str:
    """``value`` as a usable string, else ``invalid`` (default: 400 invalid_request)."""
    if not isinstance(value, str) or not value:
        raise invalid or errors.InvalidRequest(
            f"'{name}' is required and must be a non-empty string."
        )
    if len(value) > MAX_CREDENTIAL_LENGTH or "\x00" in value or _SURROGATE.search(value):
        raise invalid or errors.InvalidRequest(f"'{name}' is malformed.")
    return value


_ERROR = inline_serializer(
    "TokenError", {"error": serializers.CharField(), "message": serializers.CharField()}
)
_PASSWORD_TOKEN = inline_serializer(
    "PasswordToken",
    {
        "token_type": serializers.ChoiceField(choices=["bearer"]),
        "expires_in": serializers.IntegerField(),
        "access_token": serializers.CharField(),
        "refresh_token": serializers.CharField(),
    },
)


class PasswordTokenView(TokenAPIView):
    """``POST /api/token``: username and password (JSON body, or headers) for tokens."""

    @extend_schema(
        operation_id="password_token",
        summary="Generate a token from a username and password",
        request=inline_serializer(
            "PasswordCredentials",
            {"username": serializers.CharField(), "password": serializers.CharField()},
        ),
        responses={
            200: _PASSWORD_TOKEN,
            400: OpenApiResponse(_ERROR, description="Malformed body"),
            401: OpenApiResponse(_ERROR, description="Invalid credentials"),
            429: OpenApiResponse(_ERROR, description="Too many failed attempts"),
            503: OpenApiResponse(_ERROR, description="Shared cache unavailable"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = self.json_object(request)
        if "username" in data or "password" in data:
            username, password_ = data.get("username"), data.get("password")
        else:
            username = request.headers.get("username")
            password_ = request.headers.get("password")
        result = password.obtain(
            _text_field(username, "username"),
            _text_field(password_, "password"),
            issuer=issuer_for(request),
            client_ip=self.client_ip(request),
            request=request._request,
        )
        return Response(password_token_body(result))


class PasswordRefreshView(TokenAPIView):
    """``POST /api/token/refresh``: a refresh token for new tokens (the refresh token rotates)."""

    @extend_schema(
        operation_id="password_token_refresh",
        summary="Refresh a password-flow token",
        request=inline_serializer("RefreshRequest", {"refresh_token": serializers.CharField()}),
        responses={
            200: _PASSWORD_TOKEN,
            400: OpenApiResponse(_ERROR, description="Malformed body"),
            401: OpenApiResponse(_ERROR, description="Invalid, expired, reused or revoked"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = self.json_object(request)
        refresh_token = _text_field(data.get("refresh_token"), "refresh_token")
        result = password.refresh(refresh_token, issuer=issuer_for(request))
        return Response(password_token_body(result))


class JWKSView(TokenAPIView):
    """``GET /.well-known/jwks.json``: the public keys that verify this service's tokens."""

    no_store = False

    @extend_schema(
        operation_id="jwks",
        summary="JSON Web Key Set (RFC 7517)",
        responses={200: inline_serializer("JWKS", {"keys": serializers.ListField()})},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        response = Response(keystore.jwks())
        response["Cache-Control"] = f"public, max-age={token_settings.JWKS_MAX_AGE}"
        return response


_KEYCLOAK_TOKEN = inline_serializer(
    "KeycloakToken",
    {
        "access_token": serializers.CharField(),
        "expires_in": serializers.IntegerField(),
        "refresh_expires_in": serializers.IntegerField(),
        "refresh_token": serializers.CharField(),
        "token_type": serializers.ChoiceField(choices=["bearer"]),
        "id_token": serializers.CharField(),
        "not-before-policy": serializers.IntegerField(),
        "session_state": serializers.UUIDField(),
        "scope": serializers.CharField(),
    },
)
_KEYCLOAK_ERRORS = {
    400: OpenApiResponse(_ERROR, description="Malformed body"),
    401: OpenApiResponse(_ERROR, description="Missing or invalid credentials"),
    429: OpenApiResponse(_ERROR, description="Too many failed attempts"),
    503: OpenApiResponse(_ERROR, description="Shared cache unavailable"),
}


def _credentials_error() -> errors.InvalidCredentials:
    return errors.InvalidCredentials(errors.CREDENTIALS_MESSAGE)


class ApiKeyTokenView(TokenAPIView):
    """``POST /auth/api-key``: ``Authorization: Bearer <assertion>`` signed with an API key's
    shared secret (HS256/384/512, ``kid`` = the key id), for tokens in Keycloak's shape."""

    @extend_schema(
        operation_id="api_key_token",
        summary="Exchange an API-key assertion for tokens",
        request=None,
        parameters=[
            OpenApiParameter(
                "Authorization",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="`Bearer <assertion>`: a JWT signed (HS256, HS384 or HS512) with "
                "the API key's shared secret; header `kid` = the key id; claims `iat`, `exp` "
                "(at most 300 s apart) and `jti`.",
            )
        ],
        responses={200: _KEYCLOAK_TOKEN, **_KEYCLOAK_ERRORS},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        scheme, _, assertion = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise _credentials_error()
        result = api_key.exchange_assertion(
            _text_field(assertion.strip(), "assertion", _credentials_error()),
            issuer=issuer_for(request),
            client_ip=self.client_ip(request),
        )
        return Response(keycloak_token_body(result))


class LoginView(TokenAPIView):
    """``POST /auth/login``: email and password, for tokens in Keycloak's shape."""

    @extend_schema(
        operation_id="login",
        summary="Log in with an email and password",
        request=inline_serializer(
            "EmailCredentials",
            {"email": serializers.EmailField(), "password": serializers.CharField()},
        ),
        responses={200: _KEYCLOAK_TOKEN, **_KEYCLOAK_ERRORS},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = self.json_object(request)
        result = api_key.login(
            _text_field(data.get("email"), "email", _credentials_error()),
            _text_field(data.get("password"), "password", _credentials_error()),
            issuer=issuer_for(request),
            client_ip=self.client_ip(request),
            request=request._request,
        )
        return Response(keycloak_token_body(result))


class ApiKeyRefreshView(TokenAPIView):
    """``POST /auth/refresh``: a refresh JWT for new tokens in the same session."""

    @extend_schema(
        operation_id="api_key_refresh",
        summary="Refresh tokens of an API-key or login session",
        request=inline_serializer("RefreshJWTRequest", {"refresh_token": serializers.CharField()}),
        responses={
            200: _KEYCLOAK_TOKEN,
            400: OpenApiResponse(_ERROR, description="Malformed body"),
            401: OpenApiResponse(_ERROR, description="Wrong or expired refresh token"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = self.json_object(request)
        invalid = errors.InvalidGrant(errors.REFRESH_MESSAGE)
        refresh_token = _text_field(data.get("refresh_token"), "refresh_token", invalid)
        result = api_key.refresh(refresh_token, issuer=issuer_for(request))
        return Response(keycloak_token_body(result))


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Unknown paths under the app's prefixes answer in JSON too."""
    return errors.render(errors.NotFound())
