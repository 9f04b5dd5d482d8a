"""The refresh-cookie mode: a service's refresh token kept in an ``HttpOnly`` cookie.

With a service listed in ``REFRESH_COOKIE_SERVICES``, the endpoint a browser logs in with
(``/api/token`` for ``password``, ``/auth/login`` for ``api_key``) sets the refresh token as
an ``HttpOnly; Secure; SameSite=Strict`` cookie whose ``Path`` is the service's refresh path,
and leaves ``refresh_token`` out of the JSON body. The refresh endpoint reads the cookie,
rotates it and sets the new one. Scripts keep the body: a refresh request that carries
``refresh_token`` in its body is answered in the body, and ``/auth/api-key`` (a machine
flow) always answers in the body.

Cross-site request forgery. The cookie is an ambient credential, so every request that
uses it passes an **Origin check**: the ``Origin`` header must be the API's own origin, one
of ``CORS_ALLOWED_ORIGINS`` (django-cors-headers) or one of ``CSRF_TRUSTED_ORIGINS``
(Django's, ``*.`` subdomain wildcards included); a request without ``Origin`` is refused.
Browsers send ``Origin`` with every cross-origin request and every ``POST``, and a page
cannot forge it. ``SameSite=Strict`` already keeps the cookie off requests from other
sites; the Origin check covers the rest (another port or subdomain of the same site).
A double-submit token would need a second cookie that a front end on another origin cannot
read, so an extra endpoint to fetch it, for no protection the Origin check lacks.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse
from django.utils.http import is_same_domain

from django_tokens import errors
from django_tokens.conf import token_settings

#: Services that can keep their refresh token in a cookie, with the URL names of their
#: refresh endpoint (the cookie's path).
REFRESH_URL_NAMES = {
    "password": "django_tokens:password-refresh",
    "api_key": "django_tokens:api-key-refresh",
}


def enabled(service: str) -> bool:
    return service in token_settings.REFRESH_COOKIE_SERVICES


def cookie_path(service: str) -> str:
    return reverse(REFRESH_URL_NAMES[service])


def read(request: HttpRequest, service: str) -> str | None:
    """The refresh token in the service's cookie, if the mode is on and the cookie is sent."""
    if not enabled(service):
        return None
    return request.COOKIES.get(token_settings.REFRESH_COOKIE_NAME) or None


def set_refresh_token(
    response: HttpResponseBase, service: str, refresh_token: str, max_age: int
) -> None:
    response.set_cookie(
        token_settings.REFRESH_COOKIE_NAME,
        refresh_token,
        max_age=max(0, max_age),
        path=cookie_path(service),
        secure=True,
        httponly=True,
        samesite="Strict",
    )


def clear(response: HttpResponseBase, service: str) -> None:
    """Expire the cookie; its attributes match the ones it was set with, so that browsers
    that refuse to overwrite a ``Secure`` cookie otherwise accept the deletion."""
    set_refresh_token(response, service, "", 0)
    response.cookies[token_settings.REFRESH_COOKIE_NAME]["expires"] = (
        "Thu, 01 Jan 1970 00:00:00 GMT"
    )


def _origin(url: str) -> tuple[str, str] | None:
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.lower()
        # Normalise the default ports away, as browsers do in Origin.
        default = {"http": ":80", "https": ":443"}.get(parts.scheme)
        if default and netloc.endswith(default):
            netloc = netloc[: -len(default)]
    except ValueError:
        return None
    if not parts.scheme or not netloc:
        return None
    return parts.scheme, netloc


def trusted_origin(request: HttpRequest, origin: str) -> bool:
    found = _origin(origin)
    if found is None:
        return False
    scheme, netloc = found
    if _origin(f"{request.scheme}://{request.get_host()}") == found:
        return True
    allowed: list[Any] = [
        *getattr(settings, "CORS_ALLOWED_ORIGINS", ()),
        *getattr(settings, "CSRF_TRUSTED_ORIGINS", ()),
    ]
    for entry in allowed:
        if "*" in str(entry):
            # Django's CSRF_TRUSTED_ORIGINS form: https://*.example.com
            wildcard = urlsplit(str(entry))
            pattern = wildcard.netloc.lower().replace("*", "", 1)
            if wildcard.scheme == scheme and is_same_domain(netloc, pattern):
                return True
        elif _origin(str(entry)) == found:
            return True
    return False


def check_origin(request: HttpRequest) -> None:
    """Refuse a cookie-authenticated request whose ``Origin`` is missing or not trusted."""
    origin = request.headers.get("Origin")
    if not origin or not trusted_origin(request, origin):
        raise errors.OriginNotAllowed()
