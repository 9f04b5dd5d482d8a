"""OAuth 2.0 and OpenID Connect endpoints: django-oauth-toolkit's views, answering in seed
002's shapes, with this app's login and consent pages and discovery documents.

Every view is ``login_not_required``, so that projects using Django's
``LoginRequiredMiddleware`` keep them reachable; the authorization endpoint sends users to
its own login page (``OAUTH2_LOGIN_URL``)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import unquote_plus, urlparse

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, QueryDict
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from oauth2_provider import views as dot_views
from oauth2_provider.exceptions import FatalClientError
from oauth2_provider.models import get_access_token_model, get_refresh_token_model
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.signals import app_authorized
from oauth2_provider.views.metadata import OAuthServerMetadataView
from oauthlib.common import add_params_to_uri
from oauthlib.oauth2.rfc6749.errors import InvalidRequestFatalError
from rest_framework_simplejwt.exceptions import InvalidToken

from django_tokens import audit, errors, jws, keystore, sessions, throttling
from django_tokens.authentication import JWTAuthentication
from django_tokens.conf import token_settings
from django_tokens.services import oauth2 as oauth2_service
from django_tokens.tokens import issuer_for

logger = logging.getLogger(__name__)

#: The grants of SPEC §3 (seed 002). DOT's others are refused before it sees them: its
#: password grant would check user passwords without the throttles of ``POST /api/token``
#: (and RFC 9700 §2.4 forbids it); the device grant is not offered.
GRANT_TYPES = frozenset({"client_credentials", "authorization_code", "refresh_token"})

#: Form fields that carry a credential: Django's error reports show them as stars. (The
#: views below also hide the local variables of every frame under them, which hold the
#: same values, from those reports: ``sensitive_variables``.)
SENSITIVE_POST_PARAMETERS = (
    "client_secret",
    "code",
    "code_verifier",
    "refresh_token",
    "token",
    "access_token",
    "password",
    "client_assertion",
)
_hide_credentials = [
    sensitive_variables(),
    sensitive_post_parameters(*SENSITIVE_POST_PARAMETERS),
]


def oauth2_error(code: str, description: str, status: int | None = None) -> JsonResponse:
    status = status or errors.OAUTH2_STATUSES.get(code, 400)
    response = JsonResponse(errors.oauth2_body(code, description, status), status=status)
    for name, value in errors.NO_STORE.items():
        response[name] = value
    if status == 401:
        # RFC 6749 §5.2: a failed client authentication names the scheme to use.
        response["WWW-Authenticate"] = 'Basic realm="oauth2"'
    return response


def _holds_nul(params: QueryDict) -> bool:
    return any(
        "\x00" in key or any("\x00" in value for value in values) for key, values in params.lists()
    )


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    """The client id and secret of an ``Authorization: Basic`` header, read as
    django-oauth-toolkit reads them: base64, UTF-8, split at the first colon, each part
    form-urldecoded (RFC 6749 §2.3.1). None without such a header; ValueError when it cannot
    be read (where DOT would raise, not refuse, on a header that is not ASCII)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Basic" or not value:
        return None
    decoded = base64.b64decode(value).decode()
    client_id, secret = decoded.split(":", 1)  # ValueError without a colon
    return unquote_plus(client_id), unquote_plus(secret)


def _invalid_client() -> JsonResponse:
    return oauth2_error("invalid_client", "Invalid client", status=401)


def _refuse_malformed_parameters(request: HttpRequest) -> JsonResponse | None:
    """The answer to a request whose parameters cannot be taken as they are, else None.

    A parameter sent twice is refused (RFC 6749 §3.1, §3.2; Django would keep the last one
    and oauthlib never see the other). Client authentication fails for a Basic header that
    cannot be read, and for a ``client_id`` in the form that is not the Basic header's (one
    client, one authentication method: RFC 6749 §2.3). A NUL character belongs in no
    parameter, and PostgreSQL cannot even compare text holding one: in the client's
    credentials it fails client authentication, elsewhere the request is malformed.
    """
    for name, values in request.POST.lists():
        if len(values) > 1:
            return oauth2_error("invalid_request", f"The '{name}' parameter is repeated.")
    try:
        basic = _basic_credentials(request)
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return _invalid_client()
    named = request.POST.get("client_id")
    if basic is not None and (named not in (None, "", basic[0]) or "\x00" in "".join(basic)):
        return _invalid_client()
    if "\x00" in (named or "") + request.POST.get("client_secret", ""):
        return _invalid_client()
    if _holds_nul(request.POST) or _holds_nul(request.GET):
        return oauth2_error("invalid_request", "A parameter holds a NUL character.")
    return None


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
@method_decorator(login_not_required, name="dispatch")
class TokenView(dot_views.TokenView):
    """``POST /oauth2/token`` (``application/x-www-form-urlencoded``): client_credentials,
    authorization_code (with PKCE ``code_verifier``) and refresh_token grants."""

    @method_decorator(_hide_credentials)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = oauth2_error("invalid_request", "Use POST.", status=405)
            response["Allow"] = "POST"
            return response
        try:
            grant_type = request.POST.get("grant_type")
        except SuspiciousOperation:  # RequestDataTooBig, TooManyFieldsSent
            return oauth2_error("invalid_request", "The request body is too large.")
        refused = _refuse_malformed_parameters(request)
        if refused is not None:
            return refused
        if grant_type and grant_type not in GRANT_TYPES:
            return oauth2_error("unsupported_grant_type", "Unsupported grant type")
        try:
            with audit.context(ip=throttling.address_of(request)):
                return _reshape(super().dispatch(request, *args, **kwargs))
        except Exception:
            logger.exception("Unexpected error in the OAuth 2.0 token endpoint.")
            return oauth2_error("server_error", errors.ServerError.message)

    @method_decorator(sensitive_post_parameters(*SENSITIVE_POST_PARAMETERS))
    def authorization_flow_token_response(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        """DOT's, except for the ``app_authorized`` signal: the token is looked up for it only
        when a receiver listens (DOT reads it back for every token, a query that nothing
        else uses), and the signal is skipped, not a 500, when the token was superseded
        between its commit and that lookup (a concurrent retry of the same refresh token,
        see :class:`KeystoreOAuth2Validator`). (DOT marks its own ``client_secret`` and
        ``password`` sensitive here; this marks every credential.)"""
        _url, headers, body, status = self.create_token_response(request)
        if status == 200 and app_authorized.has_listeners(self):
            access_token = json.loads(body).get("access_token")
            if access_token is not None:
                token = (
                    get_access_token_model()
                    .objects.filter(token_checksum=sessions.token_checksum(access_token))
                    .first()
                )
                if token is not None:
                    app_authorized.send(sender=self, request=request, token=token)
        response = HttpResponse(content=body, status=status)
        for name, value in headers.items():
            response[name] = value
        return response


def _reshape_plain(response: HttpResponse) -> HttpResponse:
    """A DOT response whose success body stays as it is (revocation: empty, RFC 7009 §2.2),
    with failures in the dual envelope."""
    if 200 <= response.status_code < 300:
        for name, value in errors.NO_STORE.items():
            response[name] = value
        return response
    return _reshape(response)


class _FormEndpoint:
    """POST-only, ``application/x-www-form-urlencoded`` endpoints whose failures, whatever
    raised them, answer in the dual envelope."""

    @method_decorator(_hide_credentials)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = oauth2_error("invalid_request", "Use POST.", status=405)
            response["Allow"] = "POST"
            return response
        try:
            request.POST  # noqa: B018 -- parse now, so that an oversized body is a 400
        except SuspiciousOperation:
            return oauth2_error("invalid_request", "The request body is too large.")
        refused = _refuse_malformed_parameters(request)
        if refused is not None:
            return refused
        try:
            with audit.context(ip=throttling.address_of(request)):
                return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        except Exception:
            logger.exception("Unexpected error in an OAuth 2.0 endpoint.")
            return oauth2_error("server_error", errors.ServerError.message)


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class RevokeTokenView(_FormEndpoint, dot_views.RevokeTokenView):
    """``POST /oauth2/revoke`` (RFC 7009): the client revokes one of its access or refresh
    tokens, and with it the rest of that grant's live tokens. Unknown tokens answer 200."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _reshape_plain(super().post(request, *args, **kwargs))


def _unauthenticated_client() -> JsonResponse:
    return oauth2_error("invalid_client", "Client authentication failed.", status=401)


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class IntrospectTokenView(_FormEndpoint, dot_views.IntrospectTokenView):
    """``POST /oauth2/introspect`` (RFC 7662), for authenticated clients (HTTP Basic or form
    credentials, or a bearer token with the ``introspection`` scope).

    Answers for every access token this app issues — OAuth 2.0 tokens as long as
    django-oauth-toolkit holds them, and the password and API-key services' tokens by
    signature and revocation marks — and for OAuth 2.0 refresh tokens.
    """

    def unauthenticated_response(self, request: HttpRequest, r: Any = None) -> HttpResponse:
        return _unauthenticated_client()

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = oauth2_error("invalid_request", "Use POST.", status=405)
        response["Allow"] = "POST"
        return response

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        token = request.POST.get("token")
        if not token:
            return oauth2_error("invalid_request", "The 'token' parameter is required.")
        hint = request.POST.get("token_type_hint")
        response = JsonResponse(introspect(token, hint, request))
        for name, value in errors.NO_STORE.items():
            response[name] = value
        return response


_INACTIVE: dict[str, Any] = {"active": False}


def introspect(token: str, hint: str | None, request: HttpRequest) -> dict[str, Any]:
    """The RFC 7662 answer for ``token``."""
    if len(token) > jws.MAX_TOKEN_LENGTH:
        return dict(_INACTIVE)
    checksum = sessions.token_checksum(token)
    # The hint only orders the search (RFC 7662 §2.1); access tokens are JWTs, refresh
    # tokens are not.
    if token.count(".") == 2:
        answer = _introspect_access_token(token, checksum, request)
        if answer is not None:
            return answer
    return _introspect_refresh_token(checksum) or dict(_INACTIVE)


def _introspect_access_token(token: str, checksum: str, request: HttpRequest) -> dict | None:
    try:
        claims = JWTAuthentication().get_validated_token(token.encode(), request=request)  # type: ignore[arg-type]
    except InvalidToken:
        return None
    if "client_id" in claims:
        # django-oauth-toolkit's row is the authority for its tokens.
        stored = (
            get_access_token_model()
            .objects.select_related("user")
            .filter(token_checksum=checksum)
            .first()
        )
        if stored is None or not stored.is_valid():
            return None
    elif sessions.is_revoked(claims):
        return None
    answer: dict[str, Any] = {
        "active": True,
        "token_type": "Bearer",
        **{
            name: claims[name]
            for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "sid")
            if name in claims
        },
    }
    username = claims.get("preferred_username")
    if isinstance(username, str):
        answer["username"] = username
    return answer


def _introspect_refresh_token(checksum: str) -> dict | None:
    refresh = (
        get_refresh_token_model()
        .objects.select_related("application", "user", "access_token")
        .filter(token_checksum=checksum, revoked__isnull=True)
        .first()
    )
    if refresh is None or refresh.access_token is None or not refresh.user.is_active:
        return None
    return {
        "active": True,
        "token_type": "refresh_token",
        "scope": refresh.access_token.scope,
        "client_id": refresh.application.client_id,
        "sub": str(refresh.user.pk),
        "username": refresh.user.get_username(),
        "iat": int(refresh.created.timestamp()),
    }


_INSUFFICIENT_SCOPE = 'Bearer error="insufficient_scope", scope="openid"'


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class UserInfoView(dot_views.UserInfoView):
    """``GET``/``POST /oauth2/userinfo`` (OIDC Core §5.3): the claims the access token's
    scopes grant, for a user's token with the ``openid`` scope. Errors are JSON, with the
    ``WWW-Authenticate`` challenge of RFC 6750 §3: 401 for a missing, invalid, expired or
    revoked token, 403 ``insufficient_scope`` for a good token without ``openid`` or
    without a user (a client's own token)."""

    @method_decorator(_hide_credentials)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "POST"):
            refused = oauth2_error("invalid_request", "Use GET or POST.", status=405)
            refused["Allow"] = "GET, POST"
            return refused
        response: HttpResponse
        try:
            if self._lacks_openid(request):
                response = HttpResponse(status=403)
                response["WWW-Authenticate"] = _INSUFFICIENT_SCOPE
            else:
                response = super().dispatch(request, *args, **kwargs)
        except Exception:
            logger.exception("Unexpected error in the userinfo endpoint.")
            return oauth2_error("server_error", errors.ServerError.message)
        if response.status_code == 200:
            return response
        challenge = response.get("WWW-Authenticate", 'Bearer error="invalid_token"')
        status = 403 if response.status_code == 403 else 401
        code = "insufficient_scope" if status == 403 else "invalid_token"
        if status == 403:
            challenge = _INSUFFICIENT_SCOPE
        message = (
            "The access token lacks the 'openid' scope."
            if status == 403
            else "The access token is missing, invalid, expired or revoked."
        )
        reshaped = JsonResponse(errors.oauth2_body(code, message, status), status=status)
        reshaped["WWW-Authenticate"] = challenge
        return reshaped

    @staticmethod
    def _lacks_openid(request: HttpRequest) -> bool:
        """A live OAuth 2.0 access token that cannot read userinfo. (Left to DOT, such a
        token would be refused as invalid, 401, where RFC 6750 §3.1 says 403.)"""
        token = _bearer_token(request)
        if not token or len(token) > jws.MAX_TOKEN_LENGTH:
            return False
        stored = (
            get_access_token_model()
            .objects.filter(token_checksum=sessions.token_checksum(token))
            .first()
        )
        if stored is None or not stored.is_valid():
            return False
        return stored.user_id is None or "openid" not in stored.scope.split()


# -- the browser flow: login and consent pages ---------------------------------------------


class ThrottledAuthenticationForm(AuthenticationForm):
    """Django's login form, with the failure throttles of ``POST /api/token``: per username
    and per client address, counted in the shared cache before the password is checked."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "too_many_attempts": _("Too many failed sign-ins. Try again in %(seconds)d seconds."),
        "unavailable": _("Sign-in is unavailable at the moment. Try again shortly."),
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if not username or not self.cleaned_data.get("password"):
            return super().clean()
        client_ip = throttling.address_of(self.request) if self.request else None
        buckets = throttling.buckets_for(
            "username", username, token_settings.THROTTLE_FAILURES_PER_USERNAME, client_ip
        )
        try:
            with throttling.counting_failures(buckets):
                cleaned = super().clean()
        except errors.TooManyAttempts as exc:
            seconds = int(exc.headers.get("Retry-After", token_settings.THROTTLE_WINDOW))
            raise forms.ValidationError(
                self.error_messages["too_many_attempts"],
                code="too_many_attempts",
                params={"seconds": seconds},
            ) from None
        except errors.TemporarilyUnavailable:
            raise forms.ValidationError(
                self.error_messages["unavailable"], code="unavailable"
            ) from None
        return cleaned


@method_decorator(xframe_options_deny, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class OAuth2LoginView(auth_views.LoginView):
    """``/oauth2/login``: the sign-in page the authorization endpoint sends users to."""

    template_name = "django_tokens/oauth2/login.html"
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = False


@method_decorator(xframe_options_deny, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class AuthorizationView(dot_views.AuthorizationView):
    """``GET /oauth2/authorize``: django-oauth-toolkit's authorization endpoint (PKCE,
    exact redirect URIs, single-use codes) with this app's consent page, which names each
    scope in words (``DJANGO_TOKENS["OAUTH2_SCOPES"]``)."""

    template_name = "django_tokens/oauth2/authorize.html"

    def get_login_url(self) -> str:
        configured = token_settings.OAUTH2_LOGIN_URL
        if configured:
            try:
                return reverse(configured)
            except NoReverseMatch:
                return str(configured)
        return super().get_login_url()

    @method_decorator(sensitive_variables())  # the code it creates, in oauthlib's frames
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response: HttpResponseBase
        if _holds_nul(request.GET) or _holds_nul(request.POST):
            # Refused before any lookup: PostgreSQL cannot compare text holding a NUL.
            malformed = InvalidRequestFatalError(description="A parameter holds a NUL character.")
            response = self.error_response(FatalClientError(error=malformed), application=None)
        else:
            response = super().dispatch(request, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """DOT's, except that ``prompt=none`` never shows a page (OIDC Core §3.1.2.1):
        where the consent page would be, the client gets ``consent_required``."""
        response = super().get(request, *args, **kwargs)
        if response.status_code != 200 or "none" not in request.GET.get("prompt", "").split():
            return response
        data = self.oauth2_data
        params = [("error", "consent_required")]
        if data.get("state"):
            params.append(("state", data["state"]))
        return self.redirect(add_params_to_uri(data["redirect_uri"], params), data["application"])

    def validate_authorization_request(self, request: HttpRequest) -> Any:
        with oauth2_service.authorizing(request.user):
            return super().validate_authorization_request(request)

    def create_authorization_response(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        with oauth2_service.authorizing(request.user):
            return super().create_authorization_response(request, *args, **kwargs)


# -- discovery -------------------------------------------------------------------------------

#: DOT's endpoint names, as its discovery views ask for them, and this app's routes.
_ENDPOINTS = {
    "authorize": "django_tokens:oauth2-authorize",
    "token": "django_tokens:oauth2-token",
    "revoke-token": "django_tokens:oauth2-revoke",
    "introspect": "django_tokens:oauth2-introspect",
    "user-info": "django_tokens:oauth2-userinfo",
    "jwks-info": "django_tokens:jwks",
}


class _Discovery:
    """DOT's discovery documents, pointing at this app's endpoints, keystore and issuer."""

    def _get_endpoint_url(
        self, request: HttpRequest, view_name: str, required: bool = False
    ) -> str | None:
        name = _ENDPOINTS.get(view_name)
        if name is None:
            return None
        path = reverse(name)
        issuer = urlparse(issuer_for(request))
        if issuer.scheme in ("http", "https") and issuer.netloc:
            return f"{issuer.scheme}://{issuer.netloc}{path}"
        return request.build_absolute_uri(path)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        document = json.loads(super().get(request, *args, **kwargs).content)  # type: ignore[misc]
        document.update(self.overrides(request))
        response = JsonResponse(document)
        response["Access-Control-Allow-Origin"] = "*"
        response["Cache-Control"] = f"public, max-age={token_settings.JWKS_MAX_AGE}"
        return response

    def overrides(self, request: HttpRequest) -> dict[str, Any]:
        algorithms = sorted({key["alg"] for key in keystore.jwks()["keys"]})
        auth_methods = ["client_secret_basic", "client_secret_post", "none"]
        return {
            "issuer": issuer_for(request),
            "jwks_uri": self._get_endpoint_url(request, "jwks-info"),
            "grant_types_supported": sorted(GRANT_TYPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods[:2],
            "id_token_signing_alg_values_supported": algorithms,
            "userinfo_endpoint": self._get_endpoint_url(request, "user-info"),
            "subject_types_supported": ["public"],
        }


class OpenIDConfigurationView(_Discovery, OAuthServerMetadataView):
    """``GET /.well-known/openid-configuration`` (OpenID Connect Discovery 1.0): the RFC 8414
    document plus the OpenID Provider metadata. (DOT's own view derives the issuer from its
    URL namespace and the keys from ``OIDC_RSA_PRIVATE_KEY``; this app has neither.)"""

    def overrides(self, request: HttpRequest) -> dict[str, Any]:
        document = super().overrides(request)
        document["claims_supported"] = (
            oauth2_settings.OAUTH2_VALIDATOR_CLASS().get_discovery_claims(request)
        )
        document["prompt_values_supported"] = ["none", "login"]
        return document


class AuthorizationServerMetadataView(_Discovery, OAuthServerMetadataView):
    """``GET /.well-known/oauth-authorization-server`` (RFC 8414)."""
