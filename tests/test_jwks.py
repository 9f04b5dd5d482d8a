"""The JWKS endpoint as a resource server uses it: tokens fetched over real HTTP, verified with
PyJWT's ``PyJWKClient`` against the served key set, across key rotations and algorithms."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from django_tokens.conf import SIGNING_ALGORITHMS
from django_tokens.models import SigningKey

ISSUER = settings.DJANGO_TOKENS["ISSUER"]
AUDIENCE = "django-tokens"
KEY_TYPES = {"RS256": "RSA", "RS512": "RSA", "ES256": "EC", "EdDSA": "OKP"}
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti"]
# No keep-alive: the live server's request threads close their database connections as soon
# as each response is sent.
CLOSE = {"Connection": "close"}


class CountingJWKClient(jwt.PyJWKClient):
    """A resource server's JWKS client that counts how often it downloads the key set."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri, cache_jwk_set=True, lifespan=300)
        self.fetches = 0

    def fetch_data(self) -> Any:
        self.fetches += 1
        return super().fetch_data()


@pytest.fixture
def jwks_url(live_server: Any) -> str:
    return f"{live_server.url}/.well-known/jwks.json"


@pytest.fixture(params=SIGNING_ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each algorithm on a keystore that starts empty (the database is flushed per test)."""
    assert not SigningKey.objects.exists()
    merged = {**settings.DJANGO_TOKENS, "SIGNING_ALGORITHM": request.param}
    with override_settings(DJANGO_TOKENS=merged):
        yield request.param


def obtain_tokens(base_url: str, credentials: dict[str, str]) -> dict[str, Any]:
    response = requests.post(f"{base_url}/api/token", json=credentials, headers=CLOSE, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def refresh_tokens(base_url: str, refresh_token: str) -> dict[str, Any]:
    response = requests.post(
        f"{base_url}/api/token/refresh",
        json={"refresh_token": refresh_token},
        headers=CLOSE,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def served_jwks(url: str) -> dict[str, Any]:
    response = requests.get(url, headers=CLOSE, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def kids(jwks: dict[str, Any]) -> set[str]:
    return {key["kid"] for key in jwks["keys"]}


def verify_as_resource_server(client: jwt.PyJWKClient, token: str) -> dict[str, Any]:
    """What a resource server does: the key by ``kid`` from the JWKS, its own ``alg`` pinned."""
    signing_key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=[signing_key.algorithm_name],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": REQUIRED_CLAIMS},
    )


def rotate_signing_key() -> dict[str, Any]:
    out = io.StringIO()
    call_command("rotate_signing_key", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_password_tokens_verify_with_pyjwt_against_the_served_jwks(
    live_server: Any, jwks_url: str, user: Any, password_credentials: dict[str, str], algorithm: str
) -> None:
    body = obtain_tokens(live_server.url, password_credentials)
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    resource_server = CountingJWKClient(jwks_url)

    claims = verify_as_resource_server(resource_server, token)

    assert header["alg"] == algorithm
    assert header["typ"] == "at+jwt"
    jwk = next(key for key in served_jwks(jwks_url)["keys"] if key["kid"] == header["kid"])
    assert jwk["alg"] == algorithm
    assert jwk["kty"] == KEY_TYPES[algorithm]
    assert jwk["use"] == "sig"
    assert claims["sub"] == str(user.pk)
    assert claims["preferred_username"] == "alice"
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 3600

    refreshed = refresh_tokens(live_server.url, body["refresh_token"])
    assert (
        verify_as_resource_server(resource_server, refreshed["access_token"])["sid"]
        == (claims["sid"])
    )
    assert resource_server.fetches == 1


def test_served_jwks_holds_public_halves_only(
    live_server: Any, jwks_url: str, user: Any, password_credentials: dict[str, str], algorithm: str
) -> None:
    obtain_tokens(live_server.url, password_credentials)

    jwks = served_jwks(jwks_url)

    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert jwk["alg"] == algorithm
        assert not PRIVATE_JWK_MEMBERS & set(jwk), jwk


def test_jwks_response_is_publicly_cacheable_for_the_configured_max_age(
    live_server: Any, jwks_url: str
) -> None:
    response = requests.get(jwks_url, headers=CLOSE, timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    directives = {part.strip() for part in response.headers["Cache-Control"].split(",")}
    assert directives == {"public", "max-age=300"}
    assert "Pragma" not in response.headers

    with override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, "JWKS_MAX_AGE": 60}):
        shorter = requests.get(jwks_url, headers=CLOSE, timeout=10)
    assert shorter.headers["Cache-Control"] == "public, max-age=60"


def test_jwks_lists_the_next_key_before_it_signs_anything(
    live_server: Any, jwks_url: str, user: Any, password_credentials: dict[str, str]
) -> None:
    published = kids(served_jwks(jwks_url))
    states = dict(SigningKey.objects.values_list("state", "kid"))

    token = obtain_tokens(live_server.url, password_credentials)["access_token"]

    assert published == {states["active"], states["next"]}
    assert jwt.get_unverified_header(token)["kid"] == states["active"]
    assert states["next"] != states["active"]


def test_rotation_keeps_live_tokens_valid_and_signs_with_the_prepublished_key(
    live_server: Any, jwks_url: str, user: Any, password_credentials: dict[str, str], algorithm: str
) -> None:
    resource_server = CountingJWKClient(jwks_url)
    before = obtain_tokens(live_server.url, password_credentials)
    verify_as_resource_server(resource_server, before["access_token"])
    published_before = kids(served_jwks(jwks_url))
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]

    rotation = rotate_signing_key()

    after = obtain_tokens(live_server.url, password_credentials)
    refreshed = refresh_tokens(live_server.url, before["refresh_token"])
    new_kid = jwt.get_unverified_header(after["access_token"])["kid"]
    assert new_kid != old_kid
    assert new_kid == rotation["active"]["kid"]
    assert jwt.get_unverified_header(refreshed["access_token"])["kid"] == new_kid
    assert new_kid in published_before
    assert rotation["retiring"]["kid"] == old_kid

    # The resource server's cached key set already holds the new key: no download needed.
    verify_as_resource_server(resource_server, after["access_token"])
    verify_as_resource_server(resource_server, refreshed["access_token"])
    assert resource_server.fetches == 1

    # A resource server that fetches the key set now still verifies the pre-rotation token.
    published_after = kids(served_jwks(jwks_url))
    assert published_after == {old_kid, new_kid, rotation["next"]["kid"]}
    fresh_resource_server = CountingJWKClient(jwks_url)
    assert verify_as_resource_server(fresh_resource_server, before["access_token"])["sub"] == (
        str(user.pk)
    )
    verify_as_resource_server(fresh_resource_server, after["access_token"])
    assert SigningKey.objects.get(kid=old_kid).state == SigningKey.State.RETIRING
