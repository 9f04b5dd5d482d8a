from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from django_tokens import jws, keystore
from django_tokens.crypto import random_token
from django_tokens.models import SigningKey, UserMetadata
from django_tokens.tokens import issue_access_token, issue_id_token, issue_refresh_jwt

pytestmark = pytest.mark.django_db

ISSUER = "https://id.example.com"
CLIENT = "dtk_0123456789abcdef01234567"
SESSION_ID = "6c1a3e0e-1f0b-4c55-9a43-0f7d2d3b8e11"
SCOPE_CLAIMS = {
    "email": {"email", "email_verified"},
    "profile": {"name", "preferred_username"},
    "app_metadata": {"app_metadata"},
    "user_metadata": {"user_metadata"},
}
ID_TOKEN_CLAIMS = {"iss", "sub", "aud", "azp", "iat", "exp", "auth_time", "sid"}
REGISTERED = ("iss", "sub", "aud", "exp", "iat", "jti", "sid", "scope")


def tokens_settings(**overrides):
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


def hostile_claims_hook(user, *, service, scopes):
    """Tries to set every claim the service owns, and adds two of its own."""
    return {
        **{name: f"forged-{name}" for name in REGISTERED},
        "azp": "forged-azp",
        "client_id": "forged-client",
        "tier": "gold",
        "seen": {"service": service, "scopes": scopes},
    }


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user(
        username="ada",
        password="ada-password",
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
    )


@pytest.fixture
def metadata(ada):
    return UserMetadata.objects.create(
        user=ada,
        email_verified=True,
        app_metadata={"plan": "enterprise", "roles": ["admin"]},
        user_metadata={"theme": "dark"},
    )


def verified(token: str, *, audience: str, issuer: str = ISSUER) -> tuple[dict, dict]:
    """The header and claims of a token, checked with the keystore's public key."""
    header = jws.unverified_header(token)
    key = keystore.verification_key(header["kid"])
    assert key is not None
    claims = jws.verify(token, key.public_key, key.algorithm, audience=audience, issuer=issuer)
    return header, claims


def active_kid() -> str:
    return SigningKey.objects.get(state=SigningKey.State.ACTIVE).kid


def id_token(user, scopes, now, metadata=None, **overrides):
    arguments = {
        "session_id": SESSION_ID,
        "scopes": scopes,
        "issuer": ISSUER,
        "audience": CLIENT,
        "auth_time": now - timedelta(minutes=5),
        "lifetime": 600,
        "metadata": metadata,
        "now": now,
        **overrides,
    }
    return issue_id_token(user, **arguments)


# -- ID tokens -----------------------------------------------------------------------------


def test_id_token_carries_the_oidc_claims_and_verifies_with_the_active_key(ada, now):
    header, claims = verified(id_token(ada, ["openid"], now), audience=CLIENT)

    assert header["typ"] == "JWT"
    assert header["kid"] == active_kid()
    assert header["alg"] == "RS256"
    assert claims == {
        "iss": ISSUER,
        "sub": str(ada.pk),
        "aud": CLIENT,
        "azp": CLIENT,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 600,
        "auth_time": int((now - timedelta(minutes=5)).timestamp()),
        "sid": SESSION_ID,
    }


def test_id_token_is_refused_by_a_key_that_did_not_sign_it(ada, now):
    token = id_token(ada, ["openid"], now)
    other = keystore.generate_private_key("RS256").public_key()

    with pytest.raises(jws.InvalidSignedToken):
        jws.verify(token, other, "RS256", audience=CLIENT, issuer=ISSUER)


@pytest.mark.parametrize(
    "scopes",
    [
        ["openid"],
        ["openid", "email"],
        ["openid", "profile"],
        ["openid", "app_metadata"],
        ["openid", "user_metadata"],
        ["openid", "email", "app_metadata", "user_metadata", "profile"],
    ],
    ids=" ".join,
)
def test_id_token_claims_follow_the_scopes(ada, metadata, now, scopes):
    _, claims = verified(id_token(ada, scopes, now, metadata), audience=CLIENT)

    expected = set(ID_TOKEN_CLAIMS)
    for scope in scopes:
        expected |= SCOPE_CLAIMS.get(scope, set())
    assert set(claims) == expected


def test_id_token_email_scope_gives_email_and_its_verification(ada, metadata, now):
    _, claims = verified(id_token(ada, ["openid", "email"], now, metadata), audience=CLIENT)
    assert (claims["email"], claims["email_verified"]) == ("ada@example.com", True)

    metadata.email_verified = False
    _, claims = verified(id_token(ada, ["openid", "email"], now, metadata), audience=CLIENT)
    assert claims["email_verified"] is False


def test_id_token_profile_scope_gives_name_and_username(ada, django_user_model, now):
    _, claims = verified(id_token(ada, ["openid", "profile"], now), audience=CLIENT)
    assert (claims["name"], claims["preferred_username"]) == ("Ada Lovelace", "ada")

    nameless = django_user_model.objects.create_user(username="nameless", password="x")
    _, claims = verified(id_token(nameless, ["openid", "profile"], now), audience=CLIENT)
    assert (claims["name"], claims["preferred_username"]) == ("nameless", "nameless")


def test_id_token_metadata_scopes_give_the_users_objects(ada, metadata, now):
    scopes = ["openid", "app_metadata", "user_metadata"]
    _, claims = verified(id_token(ada, scopes, now, metadata), audience=CLIENT)

    assert claims["app_metadata"] == {"plan": "enterprise", "roles": ["admin"]}
    assert claims["user_metadata"] == {"theme": "dark"}


def test_id_token_without_a_metadata_row_gives_empty_objects_and_unverified_email(ada, now):
    assert not UserMetadata.objects.filter(user=ada).exists()
    scopes = ["openid", "email", "app_metadata", "user_metadata"]

    _, claims = verified(id_token(ada, scopes, now), audience=CLIENT)

    assert claims["app_metadata"] == {}
    assert claims["user_metadata"] == {}
    assert claims["email_verified"] is False


# -- refresh JWTs --------------------------------------------------------------------------


def test_refresh_jwt_claims_name_the_secret_the_session_and_the_issuer(ada, now):
    secret = random_token()
    expires_at = now + timedelta(days=1)

    token = issue_refresh_jwt(
        ada, session_id=SESSION_ID, secret=secret, issuer=ISSUER, expires_at=expires_at, now=now
    )

    header, claims = verified(token, audience=ISSUER)
    assert (header["typ"], header["kid"]) == ("JWT", active_kid())
    assert claims == {
        "iss": ISSUER,
        "sub": str(ada.pk),
        "aud": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": secret,
        "sid": SESSION_ID,
        "typ": "Refresh",
    }


# -- access tokens -------------------------------------------------------------------------


def access_token(user, now, **overrides):
    arguments = {
        "session_id": SESSION_ID,
        "scopes": ["openid", "email"],
        "service": "api_key",
        "issuer": ISSUER,
        "now": now,
        **overrides,
    }
    return issue_access_token(user, **arguments)


def test_access_token_is_an_at_jwt_with_the_registered_claims(ada, now):
    with tokens_settings(CLAIMS_HOOK=None, ACCESS_TOKEN_LIFETIME=900):
        issued = access_token(ada, now)

    header, claims = verified(issued.token, audience="django-tokens")
    assert (header["typ"], header["kid"]) == ("at+jwt", active_kid())
    assert claims == issued.claims
    assert issued.expires_in == 900
    assert {name: claims[name] for name in REGISTERED if name != "jti"} == {
        "iss": ISSUER,
        "sub": str(ada.pk),
        "aud": "django-tokens",
        "exp": int(now.timestamp()) + 900,
        "iat": int(now.timestamp()),
        "sid": SESSION_ID,
        "scope": "openid email",
    }
    assert len(claims["jti"]) >= 32
    assert claims["jti"] != access_token(ada, now).claims["jti"]


def test_access_token_includes_the_callers_extra_claims(ada, now):
    extra = {"azp": CLIENT, "client_id": CLIENT, "acr": "1"}
    with tokens_settings(CLAIMS_HOOK=None):
        issued = access_token(ada, now, extra=extra, lifetime=60)

    _, claims = verified(issued.token, audience="django-tokens")
    assert {name: claims[name] for name in extra} == extra
    assert claims["exp"] == int(now.timestamp()) + 60


def test_claims_hook_adds_claims_but_cannot_override_registered_ones(ada, now):
    with tokens_settings(CLAIMS_HOOK=f"{__name__}.hostile_claims_hook"):
        issued = access_token(ada, now, extra={"azp": CLIENT})

    _, claims = verified(issued.token, audience="django-tokens")
    assert claims["tier"] == "gold"
    assert claims["seen"] == {"service": "api_key", "scopes": ["openid", "email"]}
    forged = {name: claims[name] for name in (*REGISTERED, "azp") if "forged" in str(claims[name])}
    assert forged == {}
    assert "client_id" not in claims
    assert (claims["iss"], claims["sub"], claims["sid"]) == (ISSUER, str(ada.pk), SESSION_ID)
    assert claims["azp"] == CLIENT
