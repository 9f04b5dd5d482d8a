"""HTTP views: parse the request, call a service, render the result or the error.

Every error of these endpoints, expected or not, leaves through
:meth:`TokenAPIView.handle_exception` as the service's JSON envelope: never a traceback or an
HTML page.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
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

from django_tokens import audit, cookies, errors, keystore, sessions
from django_tokens.authentication import JWTAuthentication
from django_tokens.conf import token_settings
from django_tokens.models import Session
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
    #: The service whose refresh cookie this request presented: a 401 answer expires it.
    refresh_cookie_of: str | None = None

    # Every frame under a token endpoint holds a password, an assertion or a token: Django's
    # error reports (ADMINS mail, error trackers that honour it) show none of their values.
    @method_decorator(sensitive_variables())
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
        if self.refresh_cookie_of is not None and response.status_code == 401:
            cookies.clear(response, self.refresh_cookie_of)
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


def _token_response(
    body: dict[str, Any],
    service: str,
    result: password.TokenResult | api_key.KeycloakResult,
    *,
    in_cookie: bool,
) -> Response:
    """The service's JSON body; in the refresh-cookie mode, the refresh token moves from the
    body into the ``HttpOnly`` cookie."""
    if not in_cookie:
        return Response(body)
    response = Response({name: value for name, value in body.items() if name != "refresh_token"})
    cookies.set_refresh_token(response, service, result.refresh_token, result.refresh_expires_in)
    return response


def _check_login_origin(request: Request, service: str) -> None:
    """A login that sets the refresh cookie from a browser comes from a trusted origin
    (login CSRF); requests without ``Origin`` are scripts, which get the cookie harmlessly."""
    if cookies.enabled(service) and "Origin" in request.headers:
        cookies.check_origin(request._request)


def _refresh_token_of(
    view: TokenAPIView, request: Request, service: str, invalid: errors.TokenServiceError | None
) -> tuple[str, bool]:
    """The refresh token of a refresh request, and whether it came in the cookie.

    A ``refresh_token`` in the body wins (scripts); otherwise, in the cookie mode, the cookie,
    once the request's ``Origin`` passes the check (made before the body is parsed).
    """
    from_cookie = cookies.read(request._request, service)
    if from_cookie is not None:
        cookies.check_origin(request._request)
    data = view.json_object(request)
    if "refresh_token" in data or from_cookie is None:
        return _text_field(data.get("refresh_token"), "refresh_token", invalid), False
    view.refresh_cookie_of = service
    return _text_field(from_cookie, "refresh_token", invalid), True


_ERROR = inline_serializer(
    "TokenError", {"error": serializers.CharField(), "message": serializers.CharField()}
)
_NOT_JSON = OpenApiResponse(_ERROR, description="The body is not application/json")
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
        parameters=[
            OpenApiParameter(
                name,
                str,
                OpenApiParameter.HEADER,
                description=f"The {name}, read when the JSON body has neither `username` "
                "nor `password` (seed 001).",
            )
            for name in ("username", "password")
        ],
        responses={
            200: _PASSWORD_TOKEN,
            400: OpenApiResponse(_ERROR, description="Malformed body"),
            401: OpenApiResponse(_ERROR, description="Invalid credentials"),
            415: _NOT_JSON,
            429: OpenApiResponse(_ERROR, description="Too many failed attempts"),
            503: OpenApiResponse(_ERROR, description="Shared cache unavailable"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        _check_login_origin(request, password.SERVICE)
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
        return _token_response(
            password_token_body(result),
            password.SERVICE,
            result,
            in_cookie=cookies.enabled(password.SERVICE),
        )


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
            415: _NOT_JSON,
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        refresh_token, in_cookie = _refresh_token_of(self, request, password.SERVICE, None)
        result = password.refresh(refresh_token, issuer=issuer_for(request))
        return _token_response(
            password_token_body(result), password.SERVICE, result, in_cookie=in_cookie
        )


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
        responses={200: _KEYCLOAK_TOKEN, **_KEYCLOAK_ERRORS, 415: _NOT_JSON},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        _check_login_origin(request, api_key.SERVICE)
        data = self.json_object(request)
        result = api_key.login(
            _text_field(data.get("email"), "email", _credentials_error()),
            _text_field(data.get("password"), "password", _credentials_error()),
            issuer=issuer_for(request),
            client_ip=self.client_ip(request),
            request=request._request,
        )
        return _token_response(
            keycloak_token_body(result),
            api_key.SERVICE,
            result,
            in_cookie=cookies.enabled(api_key.SERVICE),
        )


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
            415: _NOT_JSON,
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        invalid = errors.InvalidGrant(errors.REFRESH_MESSAGE)
        refresh_token, in_cookie = _refresh_token_of(self, request, api_key.SERVICE, invalid)
        result = api_key.refresh(refresh_token, issuer=issuer_for(request))
        return _token_response(
            keycloak_token_body(result), api_key.SERVICE, result, in_cookie=in_cookie
        )


class LogoutView(TokenAPIView):
    """``POST /api/token/logout`` and ``POST /auth/logout``: revoke the session of the
    presented access token (``Authorization: Bearer``); in the refresh-cookie mode the answer
    also expires the cookie. The bearer header, which no other site can make a browser send,
    is the request's proof: no cookie is read here."""

    service: str = ""

    @extend_schema(
        summary="Log out: revoke the access token's session",
        request=None,
        responses={
            204: OpenApiResponse(description="Revoked; the refresh cookie, if any, expired"),
            401: OpenApiResponse(_ERROR, description="Missing, invalid or revoked token"),
        },
        # A security requirement object: drf-spectacular passes it through as it is.
        auth=[{"bearerAuth": []}],  # type: ignore[list-item]
    )
    def post(self, request: Request) -> Response:
        try:
            authenticated = JWTAuthentication().authenticate(request)
        except drf_exceptions.AuthenticationFailed as exc:
            raise errors.InvalidAccessToken() from exc
        if authenticated is None:
            raise errors.InvalidAccessToken()
        session_id = authenticated[1].get("sid")
        try:
            session_id = uuid.UUID(str(session_id))
        except ValueError as exc:
            raise errors.InvalidAccessToken("The access token belongs to no session.") from exc
        own = Session.objects.filter(pk=session_id, service=self.service)
        with audit.context(actor=str(authenticated[0].username), ip=self.client_ip(request)):
            revoked = sessions.revoke_sessions(own, reason="logout")
        if not revoked:
            raise errors.InvalidAccessToken(
                "The access token belongs to no live session of this service."
            )
        response = Response(status=204)
        if cookies.enabled(self.service):
            cookies.clear(response, self.service)
        return response


@extend_schema_view(post=extend_schema(operation_id="password_logout"))
class PasswordLogoutView(LogoutView):
    service = password.SERVICE


@extend_schema_view(post=extend_schema(operation_id="api_key_logout"))
class ApiKeyLogoutView(LogoutView):
    service = api_key.SERVICE


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Unknown paths under the app's prefixes answer in JSON too."""
    return errors.render(errors.NotFound())
