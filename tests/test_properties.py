"""Property tests (hypothesis) for everything that parses what a client sends.

Each property holds for every input hypothesis draws, both for the parsing functions called
directly and through the endpoints with Django's test client, on the real database and the
configured cache:

- API-key assertions (``Authorization: Bearer <assertion>``): arbitrary text, bytes, JSON
  headers and claims are refused with seed 000's 401 — and accepted exactly when the
  assertion is genuinely valid (an HMAC of the key's secret, its key id, sound ``iat``/``exp``,
  a fresh ``jti``);
- HTTP Basic client authentication on ``/oauth2/token``, ``/oauth2/introspect`` and
  ``/oauth2/revoke``: arbitrary base64, colons, percent-encoding (RFC 6749 §2.3.1), bytes that
  are not UTF-8, NUL characters: 401 ``invalid_client`` in JSON — and real credentials, however
  odd their characters, authenticate when form-urlencoded;
- form bodies: arbitrary keys and values, repeated parameters, NUL characters, oversized
  bodies: a JSON 4xx in the OAuth envelope;
- JSON bodies on ``/api/token``, ``/auth/login``, ``/api/token/refresh``, ``/auth/refresh``:
  arbitrary JSON values, non-objects, deep nesting, huge strings, invalid UTF-8, other media
  types: 400, 401 or 415 in the simple envelope, and 200 only for the real credentials;
- scopes: a granted scope is never broader than what the client may have and what it asked
  for; anything else is ``invalid_scope``.

Never a 500, never an HTML page, never an exception out of a parser. The runs are
reproducible (``derandomize``) and store nothing (``database=None``); the module runs in
well under a minute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import jwt
import pytest
from django.conf import settings
from django.test import Client, RequestFactory, override_settings
from hypothesis import HealthCheck, event, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework_simplejwt.exceptions import InvalidToken

from django_tokens import api_keys, errors, jws
from django_tokens.authentication import JWTAuthentication
from django_tokens.oauth2_views import _basic_credentials
from django_tokens.services import api_key as api_key_service
from django_tokens.views import _text_field
from tests.test_oauth2_token import OAuthClient, basic, create_application, printed_secret

pytestmark = pytest.mark.django_db

HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
LEEWAY = 30
MAX_AGE = 300
PASSWORD = "property-password"
CREDENTIALS_REFUSED = {"error": "invalid_credentials", "message": errors.CREDENTIALS_MESSAGE}
REFRESH_REFUSED = {"error": "invalid_grant", "message": errors.REFRESH_MESSAGE}
#: The scopes a client may ask for with client_credentials (``openid`` needs a user).
CLIENT_SCOPES = {"profile", "email", "read", "write"}
#: RFC 6749 §5.2 codes and the statuses SPEC §3 gives them.
OAUTH2_STATUSES = {
    "invalid_request": 400,
    "invalid_grant": 400,
    "unsupported_grant_type": 400,
    "invalid_scope": 400,
    "unsupported_token_type": 400,
    "invalid_client": 401,
    "unauthorized_client": 403,
    "access_denied": 403,
}


def quick(examples: int) -> Any:
    """Hypothesis settings of this module: reproducible, nothing stored, no deadline."""
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@pytest.fixture(autouse=True)
def no_throttles() -> Iterator[None]:
    """Failure throttles off: hundreds of refusals from one address must each be parsed, not
    answered 429 (the throttles have tests of their own)."""
    overrides = {
        "THROTTLE_FAILURES_PER_KEY": 0,
        "THROTTLE_FAILURES_PER_IP": 0,
        "THROTTLE_FAILURES_PER_USERNAME": 0,
    }
    with override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides}):
        yield


@pytest.fixture
def owner(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        username="prop-alice", password=PASSWORD, email="prop-alice@example.com"
    )


@pytest.fixture
def issued(owner: Any) -> api_keys.IssuedSecret:
    return api_keys.issue(owner, name="properties")


@pytest.fixture
def service() -> OAuthClient:
    application, output = create_application(
        "confidential", "client-credentials", "--name=property-service"
    )
    return OAuthClient(application.client_id, printed_secret(output), application)


# -- strategies -------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
#: JSON as RFC 8259 has it: no NaN or Infinity, which Python's parser alone reads.
strict_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
#: Text as HTTP headers carry it: any code point a WSGI server can pass (latin-1).
header_text = st.text(st.characters(max_codepoint=255, exclude_categories=["Cs"]), max_size=200)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def post_json(client: Client, path: str, body: bytes | str, content_type: str) -> Any:
    return client.post(path, body, content_type=content_type)


def assert_simple_error(response: Any, *allowed: int) -> dict[str, Any]:
    """A JSON error in SPEC §1's envelope, with one of the ``allowed`` statuses."""
    assert response.status_code in allowed, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = json.loads(response.content)
    assert set(body) == {"error", "message"}, body
    return dict(body)


def assert_oauth2_error(response: Any, *codes: str) -> dict[str, Any]:
    """A JSON error in SPEC §3's envelope whose code is one of ``codes`` (any documented code
    when none is given), with the status SPEC §3 gives that code."""
    assert response["Content-Type"] == "application/json", (
        response.status_code,
        response["Content-Type"],
        response.content[:300],
    )
    body = json.loads(response.content)
    assert set(body) == {"error", "error_description", "meta", "errors"}, body
    code = body["error"]
    assert code in (codes or OAUTH2_STATUSES), body
    assert response.status_code == OAUTH2_STATUSES[code], (response.status_code, body)
    assert body["errors"] == [
        {"httpcode": response.status_code, "message": body["error_description"]}
    ]
    if response.status_code == 401:
        assert response["WWW-Authenticate"].startswith("Basic ")
    return dict(body)


# -- the parsers, called directly --------------------------------------------------------------

#: JSON that only Python's parser reads: NaN and Infinity literals.
NAN_KID_TOKEN = ".".join(
    [b64url(b'{"alg": "HS256", "kid": NaN}'), b64url(b'{"exp": Infinity}'), ""]
)
token_like = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.builds(
        lambda header, claims, signature: f"{header}.{claims}.{signature}",
        st.one_of(json_values.map(segment), st.binary(max_size=60).map(b64url), st.text()),
        st.one_of(json_values.map(segment), st.binary(max_size=60).map(b64url), st.text()),
        st.one_of(st.binary(max_size=64).map(b64url), st.text(max_size=20)),
    ),
)


@quick(200)
@given(token=token_like)
@example(token="a" * (jws.MAX_TOKEN_LENGTH + 1))
@example(token=f"{segment({'alg': 'HS256', 'crit': ['exp']})}.{segment({})}.")
@example(token=f"{b64url(b'[1]')}.{b64url(b'{}')}.")
@example(token=NAN_KID_TOKEN)
def test_unverified_header_and_claims_are_objects_or_refused(token: str | bytes) -> None:
    """Whatever the text or bytes, reading a token's header or claims gives a JSON object or
    raises InvalidSignedToken — no other exception, and never a ``crit`` header."""
    try:
        header = jws.unverified_header(token)
    except jws.InvalidSignedToken:
        pass
    else:
        assert isinstance(header, dict)
        assert "crit" not in header
    try:
        claims = jws.unverified_claims(token)
    except jws.InvalidSignedToken:
        pass
    else:
        assert isinstance(claims, dict)


hmac_headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(sorted(HMAC_HASHES))},
    optional={"typ": json_values, "kid": json_values, "crit": json_values, "b64": json_values},
)


def hmac_token(header: dict[str, Any], claims_json: str, secret: bytes) -> str:
    signing_input = f"{segment(header)}.{b64url(claims_json.encode())}"
    digest = hmac.new(secret, signing_input.encode(), HMAC_HASHES[header["alg"]]).digest()
    return f"{signing_input}.{b64url(digest)}"


@quick(150)
@given(header=hmac_headers, claims=json_values, shift=st.integers(-400, 400))
@example(header={"alg": "HS256"}, claims={"iat": 0, "exp": math.inf}, shift=0)
@example(header={"alg": "HS256"}, claims={"iat": math.nan, "exp": 1e400}, shift=0)
@example(header={"alg": "HS256"}, claims={"iat": True, "exp": "9999999999"}, shift=0)
def test_verify_of_a_correctly_signed_token_checks_its_claims_or_refuses(
    header: dict[str, Any], claims: Any, shift: int
) -> None:
    """A token signed with the right secret but with any JSON for claims: verify() returns
    claims that carry a live ``exp`` and a past ``iat``, or raises InvalidSignedToken."""
    now = int(time.time())
    if isinstance(claims, dict):
        claims = {"iat": now + shift, "exp": now + shift + 60, **claims}
    secret = b"s" * 64
    token = hmac_token(header, json.dumps(claims), secret)
    try:
        verified = jws.verify(token, secret, header["alg"], leeway=LEEWAY)
    except jws.InvalidSignedToken:
        return
    assert isinstance(verified, dict)
    assert "crit" not in header
    assert int(verified["exp"]) > now - LEEWAY - 5
    assert int(verified["iat"]) <= now + LEEWAY + 5


@quick(200)
@given(raw=st.one_of(st.binary(max_size=300), token_like.map(str)))
def test_jwt_authentication_refuses_arbitrary_bearer_tokens_with_invalid_token(
    raw: bytes | str,
) -> None:
    """The consumer-side parser: arbitrary bytes are an InvalidToken (DRF's 401), nothing
    else."""
    with pytest.raises(InvalidToken):
        JWTAuthentication().get_validated_token(raw.encode() if isinstance(raw, str) else raw)  # type: ignore[arg-type]


@quick(200)
@given(assertion=token_like.map(str))
def test_assertion_key_id_is_an_hmac_algorithm_and_a_short_key_id_or_refused(
    assertion: str,
) -> None:
    """Reading an assertion's algorithm and key id: an HMAC algorithm and a non-empty key id of
    at most 64 characters holding no NUL, or the uniform 401."""
    try:
        algorithm, key_id = api_key_service._assertion_key_id(assertion)
    except errors.InvalidCredentials as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert refused.message == errors.CREDENTIALS_MESSAGE
        return
    assert algorithm in HMAC_HASHES
    assert isinstance(key_id, str)
    assert 0 < len(key_id) <= api_key_service.MAX_KEY_ID_LENGTH
    assert "\x00" not in key_id


@quick(300)
@given(value=json_values | st.text(max_size=5000))
@example(value="a" * 4097)
@example(value="a\x00b")
@example(value="\ud800")
def test_text_field_accepts_exactly_the_usable_strings(value: Any) -> None:
    """A credential field is the string itself when it is non-empty, at most 4096 characters
    and free of NUL and lone surrogates; anything else is a 400 invalid_request."""
    usable = (
        isinstance(value, str)
        and 0 < len(value) <= 4096
        and "\x00" not in value
        and not any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    )
    try:
        parsed = _text_field(value, "field")
    except errors.InvalidRequest:
        assert not usable
    else:
        assert usable
        assert parsed == value


# -- API-key assertions through POST /auth/api-key ----------------------------------------------


@quick(150)
@given(
    value=st.one_of(
        header_text,
        header_text.map(lambda text: f"Bearer {text}"),
        token_like.map(lambda token: f"Bearer {token!s}"[:9000]),
        st.binary(max_size=200).map(lambda data: "Bearer " + data.decode("latin-1")),
    )
)
@example(value="")
@example(value="Bearer")
@example(value="Bearer  ")
@example(value="bearer " + "a" * 10_000)
def test_arbitrary_authorization_headers_get_the_documented_401(
    client: Client, issued: api_keys.IssuedSecret, value: str
) -> None:
    """Nothing but a valid assertion: always seed 000's 401, in JSON."""
    response = client.post("/auth/api-key", HTTP_AUTHORIZATION=value)

    assert assert_simple_error(response, 401) == CREDENTIALS_REFUSED


iat_offsets = st.sampled_from([-1000, -200, -60, -5, 0, 5, 20, 60, 1000])
lifetimes = st.sampled_from([-10, 0, 1, 60, 299, 300, 301, 1000])
odd_numbers = st.one_of(json_values, st.floats(), st.integers(-(10**30), 10**30))
#: Text that names a key id or a ``jti``: printable, or holding what no database column can.
odd_text = st.one_of(st.text(max_size=70), st.sampled_from(["\x00", "a\x00", "\ud800", "j" * 257]))


class Now:
    """A time claim ``offset`` seconds from the moment the assertion is signed (so that the
    drawn values do not depend on the clock)."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __repr__(self) -> str:
        return f"Now({self.offset:+d})"


#: What can be wrong with an assertion, one drawn change at a time.
FLAWS = [
    "alg",
    "kid",
    "kid in iss",
    "typ",
    "crit",
    "iat",
    "exp",
    "lifetime",
    "nbf",
    "jti",
    "iss",
    "extra claim",
    "unsigned",
    "header",
    "claims",
]


@st.composite
def assertions(draw: Any, key_id: str) -> dict[str, Any]:
    """An assertion's parts (header, claims, whether it is signed with the key's secret): a
    well-formed assertion with up to three drawn changes, each of which may or may not break
    it (a ``kid`` read from ``iss``, a time moved inside the leeway ...)."""
    iat = draw(iat_offsets)
    header: Any = {"alg": draw(st.sampled_from(sorted(HMAC_HASHES))), "kid": key_id}
    if draw(st.booleans()):
        header["typ"] = draw(st.sampled_from(["JWT", "jwt", "application/jwt"]))
    claims: Any = {"iat": Now(iat), "exp": Now(iat + draw(lifetimes)), "jti": FRESH}
    signed = True
    flaws = draw(st.lists(st.sampled_from(FLAWS), max_size=3, unique=True))
    # Whole-part replacements last: the other changes edit a header and claims that are objects.
    for flaw in sorted(flaws, key=lambda flaw: flaw in ("header", "claims")):
        if flaw == "alg":
            header["alg"] = draw(st.sampled_from(["none", "RS256", "ES256", "hs256", ""]))
        elif flaw == "kid":
            header["kid"] = draw(odd_text | json_values)
        elif flaw == "kid in iss":
            header.pop("kid")
            claims["iss"] = draw(st.just(key_id) | odd_text | json_values)
        elif flaw == "typ":
            header["typ"] = draw(st.sampled_from(["at+jwt", "JOSE", "", "secevent+jwt"]))
        elif flaw == "crit":
            header["crit"] = draw(json_values)
        elif flaw in ("iat", "exp", "nbf"):
            claims[flaw] = draw(st.builds(Now, iat_offsets) | odd_numbers)
        elif flaw == "lifetime":
            del claims[draw(st.sampled_from(["iat", "exp"]))]
        elif flaw == "jti":
            claims["jti"] = draw(odd_text | json_values)
        elif flaw == "iss":
            claims["iss"] = draw(odd_text | json_values)
        elif flaw == "extra claim":
            claims[draw(st.text(max_size=10))] = draw(json_values)
        elif flaw == "unsigned":
            signed = False
        elif flaw == "header":
            header = draw(json_values)
        else:
            claims = draw(json_values)
    return {"header": header, "claims": claims, "signed": signed}


#: A ``jti`` never sent before, made when the assertion is signed.
FRESH = "<fresh jti>"


def at(claims: Any, now: int) -> Any:
    """The claims as signed at ``now``: each :class:`Now` a Unix time, a fresh ``jti``."""
    if not isinstance(claims, dict):
        return claims
    signed = {
        name: now + value.offset if isinstance(value, Now) else value
        for name, value in claims.items()
    }
    if signed.get("jti") == FRESH:
        signed["jti"] = uuid.uuid4().hex
    return signed


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any, longest: int) -> bool:
    """A non-empty string a database column and a cache key can hold."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= longest
        and "\x00" not in value
        and not any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    )


def _integer(value: Any) -> int | None:
    """``int(value)``, as RFC 7519 time claims are read, or None."""
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        return None


def genuinely_valid(
    assertion: str, parts: dict[str, Any], claims: Any, key_id: str, now: float
) -> bool:
    """The assertion rules of SPEC §2 and the README, stated independently of the
    implementation."""
    header = parts["header"]
    if len(assertion) > jws.MAX_TOKEN_LENGTH or not parts["signed"]:
        return False
    if not (isinstance(header, dict) and isinstance(claims, dict)):
        return False
    if header.get("alg") not in HMAC_HASHES or "crit" in header:
        return False
    if "typ" in header and header["typ"].lower() not in {"jwt", "application/jwt"}:
        return False
    named = header.get("kid")
    if named is None:
        named = claims.get("iss")
    if named != key_id:
        return False
    iat, exp, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
    if not (_number(iat) and _number(exp)):
        return False
    if exp - iat > MAX_AGE or max(iat, int(iat)) > now + LEEWAY or int(exp) <= now - LEEWAY:
        return False
    if "nbf" in claims:
        nbf = _integer(claims["nbf"])
        if nbf is None or nbf > now + LEEWAY:
            return False
    return _plain(jti, 256)


def encode_assertion(header: Any, claims: Any, signed: bool, secret: str) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    alg = header.get("alg") if isinstance(header, dict) else None
    if signed and alg in HMAC_HASHES:
        digest = hmac.new(secret.encode(), signing_input.encode(), HMAC_HASHES[alg]).digest()
    else:
        digest = hashlib.sha256(signing_input.encode()).digest()  # anyone's guess, not an HMAC
    return f"{signing_input}.{b64url(digest)}"


@quick(250)
@given(data=st.data())
def test_assertions_are_accepted_exactly_when_genuinely_valid(
    client: Client, issued: api_keys.IssuedSecret, data: st.DataObject
) -> None:
    """Headers and claims of every kind, signed with the key's secret or not: 200 with tokens
    when the assertion meets every rule, else seed 000's 401; and a replay of an accepted one
    is refused."""
    key_id = issued.api_key.key_id
    parts = data.draw(assertions(key_id))
    now = int(time.time())
    claims = at(parts["claims"], now)
    assertion = encode_assertion(parts["header"], claims, parts["signed"], issued.secret)
    valid = genuinely_valid(assertion, parts, claims, key_id, now)

    response = client.post("/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {assertion}")

    event("accepted" if valid else "refused")
    if not valid:
        assert assert_simple_error(response, 401) == CREDENTIALS_REFUSED, parts
        return
    assert response.status_code == 200, (parts, response.content)
    assert response.json()["session_state"]
    replay = client.post("/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {assertion}")
    assert assert_simple_error(replay, 401) == CREDENTIALS_REFUSED


@quick(40)
@given(
    algorithm=st.sampled_from(sorted(HMAC_HASHES)),
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
)
def test_a_valid_assertion_is_accepted_once_whatever_else_it_claims(
    client: Client, issued: api_keys.IssuedSecret, algorithm: str, extra: dict[str, Any]
) -> None:
    """PyJWT as a client signs it, with any extra claims: accepted, then refused as a replay."""
    now = int(time.time())
    claims = {**extra, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    claims.pop("nbf", None)
    assertion = jwt.encode(
        claims, issued.secret, algorithm=algorithm, headers={"kid": issued.api_key.key_id}
    )

    first = client.post("/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {assertion}")
    replay = client.post("/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {assertion}")

    assert first.status_code == 200, (claims, first.content)
    assert assert_simple_error(replay, 401) == CREDENTIALS_REFUSED


# -- HTTP Basic client authentication on the OAuth 2.0 endpoints -------------------------------

FORM_ENDPOINTS = {
    "/oauth2/token": {"grant_type": "client_credentials"},
    "/oauth2/introspect": {"token": "anything"},
    "/oauth2/revoke": {"token": "anything"},
}
basic_values = st.one_of(
    st.binary(max_size=120).map(lambda data: "Basic " + base64.b64encode(data).decode()),
    st.tuples(st.text(max_size=40), st.text(max_size=40)).map(
        lambda pair: (
            "Basic "
            + base64.b64encode(f"{quote_plus(pair[0])}:{quote_plus(pair[1])}".encode()).decode()
        )
    ),
    st.tuples(st.text(max_size=40), st.text(max_size=40)).map(
        lambda pair: "Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode()
    ),
    header_text.map(lambda text: f"Basic {text}"),
)


@quick(120)
@given(path=st.sampled_from(sorted(FORM_ENDPOINTS)), value=basic_values)
@example(path="/oauth2/token", value="Basic " + base64.b64encode(b"a%00b:secret").decode())
@example(path="/oauth2/token", value="Basic " + base64.b64encode(b"a\x00b:secret").decode())
@example(path="/oauth2/introspect", value="Basic " + base64.b64encode(b"\xff\xfe:\xff").decode())
@example(path="/oauth2/revoke", value="Basic " + base64.b64encode(b"no-colon").decode())
@example(path="/oauth2/token", value="Basic ====")
def test_arbitrary_basic_credentials_are_invalid_client(
    client: Client, service: OAuthClient, path: str, value: str
) -> None:
    """Any Basic header but the client's own: 401 invalid_client, JSON, with a Basic
    challenge — on every endpoint that authenticates clients."""
    response = client.post(path, FORM_ENDPOINTS[path], HTTP_AUTHORIZATION=value)

    assert response.status_code == 401, (path, value, response.content)
    assert_oauth2_error(response, "invalid_client")


#: Characters RFC 6749 §2.3.1 has clients form-urlencode: the separators of Basic and of forms,
#: percent signs, spaces, non-ASCII.
credential_text = st.text(
    st.sampled_from(list(":%+ &=/?#é€ßaZ09-._~")) | st.characters(min_codepoint=32),
    min_size=1,
    max_size=24,
).filter(lambda text: "\x00" not in text and text == text.strip())


@quick(25)
@given(client_id=credential_text, secret=credential_text)
@example(client_id="a:b", secret="c:d%20e+f")
def test_real_credentials_with_any_characters_authenticate_when_form_urlencoded(
    client: Client, client_id: str, secret: str
) -> None:
    """A client whose id and secret hold colons, percent signs, plus signs or non-ASCII
    letters authenticates with HTTP Basic over the form-urlencoded parts (RFC 6749 §2.3.1),
    and with the same values in the form."""
    from oauth2_provider.models import Application

    secret = secret + "-" + "x" * 40  # a generated secret's length: the fast hasher
    Application.objects.filter(client_id=client_id).delete()
    Application.objects.create(
        name="odd-characters",
        client_id=client_id,
        client_secret=secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )

    by_basic = client.post(
        "/oauth2/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(client_id, secret),
    )
    in_form = client.post(
        "/oauth2/token",
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )

    assert by_basic.status_code == 200, by_basic.content
    assert in_form.status_code == 200, in_form.content
    assert (
        jwt.decode(by_basic.json()["access_token"], options={"verify_signature": False})[
            "client_id"
        ]
        == client_id
    )


# -- form bodies on the OAuth 2.0 endpoints ------------------------------------------------------

form_text = st.text(max_size=60) | st.sampled_from(
    ["grant_type", "client_id", "client_secret", "scope", "token", "code", "refresh_token"]
)
form_pairs = st.lists(st.tuples(form_text, form_text | st.text(max_size=3000)), max_size=8)


@quick(150)
@given(
    path=st.sampled_from(sorted(FORM_ENDPOINTS)),
    pairs=form_pairs,
    authenticate=st.booleans(),
    raw=st.none() | st.binary(max_size=300),
)
@example(
    path="/oauth2/token",
    pairs=[("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
    authenticate=True,
    raw=None,
)
@example(
    path="/oauth2/token", pairs=[("scope", "read"), ("scope", "write")], authenticate=True, raw=None
)
@example(path="/oauth2/token", pairs=[("code", "a\x00")], authenticate=True, raw=None)
@example(path="/oauth2/revoke", pairs=[("client_id", "\x00")], authenticate=False, raw=None)
@example(path="/oauth2/introspect", pairs=[("token", "a" * 3_000_000)], authenticate=True, raw=None)
@example(
    path="/oauth2/token", pairs=[(f"f{n}", "v") for n in range(1100)], authenticate=True, raw=None
)
@example(path="/oauth2/token", pairs=[], authenticate=True, raw=b"grant_type=%FF%FE&scope=%")
def test_arbitrary_form_bodies_get_a_json_answer_never_a_server_error(
    client: Client,
    service: OAuthClient,
    path: str,
    pairs: list[tuple[str, str]],
    authenticate: bool,
    raw: bytes | None,
) -> None:
    """Any urlencoded keys and values, repeated or not, with NUL characters, oversized, or raw
    bytes that are not valid percent-encoding: a JSON answer, never a 5xx — and a parameter
    sent twice or holding a NUL is refused whatever else the request says."""
    fields = list(pairs)
    if path == "/oauth2/token" and authenticate and not any(k == "grant_type" for k, _ in fields):
        fields.append(("grant_type", "client_credentials"))
    body = raw if raw is not None else urlencode(fields).encode()
    headers = (
        {"HTTP_AUTHORIZATION": basic(service.client_id, service.secret)} if authenticate else {}
    )

    response = client.post(path, body, content_type="application/x-www-form-urlencoded", **headers)

    assert response.status_code < 500, response.content[:300]
    if response.status_code == 200:
        if path == "/oauth2/revoke":
            assert response.content == b""
        else:
            assert isinstance(response.json(), dict)
        return
    error = assert_oauth2_error(response)
    names = [name for name, _ in fields]
    parsed = (
        raw is None
        and len(body) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        and len(fields) <= settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    )
    if parsed and len(set(names)) < len(names):
        assert error["error"] == "invalid_request", error
    if raw is None and any("\x00" in name + value for name, value in fields):
        assert error["error"] in {"invalid_request", "invalid_client"}, error


# -- JSON bodies on the password and API-key endpoints ----------------------------------------

JSON_ENDPOINTS = ["/api/token", "/auth/login", "/api/token/refresh", "/auth/refresh"]
JSON = "application/json"
DEEP = "[" * 100_000 + "]" * 100_000
HUGE_REFRESH = json.dumps({"refresh_token": "a" * 1_000_000})


@quick(200)
@given(
    path=st.sampled_from(JSON_ENDPOINTS),
    body=st.one_of(
        json_values.map(json.dumps),
        st.dictionaries(
            st.sampled_from(["username", "password", "email", "refresh_token"])
            | st.text(max_size=8),
            json_values | st.text(max_size=5000),
            max_size=4,
        ).map(json.dumps),
        st.binary(max_size=200),
    ),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/x-www-form-urlencoded",
        ]
    ),
)
@example(path="/api/token", body=DEEP, content_type=JSON)
@example(path="/auth/refresh", body=HUGE_REFRESH, content_type=JSON)
@example(
    path="/auth/login",
    body=b'{"email": "\xff@example.com", "password": "x"}',
    content_type="application/json",
)
@example(
    path="/api/token",
    body='{"username": "a\\u0000", "password": "b"}',
    content_type="application/json",
)
@example(
    path="/api/token/refresh", body='{"refresh_token": "\\ud800"}', content_type="application/json"
)
@example(path="/api/token", body="1" * 5000, content_type="application/json")
@example(path="/api/token", body="", content_type="application/json")
def test_arbitrary_json_bodies_get_400_401_or_415_in_json(
    client: Client, owner: Any, path: str, body: str | bytes, content_type: str
) -> None:
    """Any JSON value, object or not, nested deep, huge, invalid UTF-8, or in another media
    type: refused with 400, 401 or 415 in the simple envelope — never a success. (An empty
    body is no credentials, whatever its media type: 400 or 401.)"""
    response = client.post(path, body, content_type=content_type)

    error = assert_simple_error(response, 400, 401, 415)
    expected = {
        400: "invalid_request",
        415: "unsupported_media_type",
        401: "invalid_grant" if "refresh" in path else "invalid_credentials",
    }
    assert error["error"] == expected[response.status_code], error
    if path.startswith("/auth/") and response.status_code == 401:
        assert error == (REFRESH_REFUSED if "refresh" in path else CREDENTIALS_REFUSED)
    if body and not content_type.startswith("application/json"):
        assert response.status_code == 415


@quick(60)
@given(
    path=st.sampled_from(["/api/token", "/auth/login"]),
    extra=st.dictionaries(
        st.text(max_size=10).filter(lambda name: name not in {"username", "email", "password"}),
        strict_json_values,
        max_size=4,
    ),
)
def test_real_credentials_with_any_other_members_get_tokens(
    client: Client, owner: Any, path: str, extra: dict[str, Any]
) -> None:
    """Members a body should not have are ignored: the real credentials still get tokens."""
    name = {"username": owner.username} if path == "/api/token" else {"email": owner.email}

    response = client.post(
        path, json.dumps({**extra, **name, "password": PASSWORD}), content_type="application/json"
    )

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"


# -- scopes ------------------------------------------------------------------------------------

scope_words = st.sampled_from(
    ["read", "write", "profile", "email", "openid", "admin", "READ", "read ", "", "*"]
)
scope_strings = st.one_of(
    st.lists(scope_words, max_size=5).map(" ".join),
    st.lists(scope_words, max_size=4).map("\t".join),
    st.text(max_size=40),
)


@quick(150)
@given(scope=scope_strings)
@example(scope="read  write")
@example(scope=" read write ")
@example(scope="openid")
@example(scope="read read")
def test_granted_scope_is_never_broader_than_allowed_or_asked(
    client: Client, service: OAuthClient, scope: str
) -> None:
    """client_credentials with any scope string: the grant is exactly the scopes asked for
    when each is one the client may have, never anything else; otherwise invalid_scope. The
    access token claims what the answer says."""
    response = client.post(
        "/oauth2/token",
        {"grant_type": "client_credentials", "scope": scope},
        HTTP_AUTHORIZATION=basic(service.client_id, service.secret),
    )

    asked = scope.strip().split(" ")
    if response.status_code != 200:
        error = assert_oauth2_error(response)["error"]
        assert error == ("invalid_request" if "\x00" in scope else "invalid_scope"), scope
        assert not set(asked) <= CLIENT_SCOPES
        return
    event("granted")
    granted = response.json()["scope"].split(" ")
    assert set(granted) <= CLIENT_SCOPES
    assert set(granted) <= set(asked)
    assert set(asked) <= CLIENT_SCOPES
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"].split(" ") == granted


@quick(20)
@given(
    asked=st.lists(
        st.sampled_from(["openid", "profile", "email", "read", "write", "admin"]), max_size=4
    )
)
def test_a_refresh_never_broadens_the_grant(client: Client, owner: Any, asked: list[str]) -> None:
    """The refresh_token grant with any scope: a subset of the original grant, or
    invalid_scope."""
    from tests.test_oauth2_endpoints import obtain_tokens, web_client

    app = web_client(f"prop-web-{uuid.uuid4().hex[:8]}")
    tokens = obtain_tokens(client, owner, app, "openid profile")
    fields = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    if asked:
        fields["scope"] = " ".join(asked)

    response = client.post(
        "/oauth2/token", fields, HTTP_AUTHORIZATION=basic(app.client_id, app.secret)
    )

    original = {"openid", "profile"}
    if response.status_code == 200:
        granted = set(response.json()["scope"].split(" "))
        assert granted <= original
        assert not asked or granted == set(asked)
    else:
        assert assert_oauth2_error(response)["error"] == "invalid_scope"
        assert not set(asked) <= original


# -- Basic parsing, directly --------------------------------------------------------------------


@quick(200)
@given(value=header_text | basic_values)
@example(value="Basic \x80")
@example(value="Basic " + base64.b64encode(b"\xff:\xfe").decode())
def test_basic_credentials_are_a_pair_nothing_or_unreadable(value: str) -> None:
    """The Basic header as the OAuth endpoints read it: a client id and secret, None when
    there is no Basic header, or a ValueError — no other exception."""
    request = RequestFactory().post("/oauth2/token", HTTP_AUTHORIZATION=value)

    try:
        credentials = _basic_credentials(request)
    except ValueError:
        return
    if credentials is not None:
        client_id, secret = credentials
        assert isinstance(client_id, str)
        assert isinstance(secret, str)


def test_basic_credentials_are_split_then_form_urldecoded() -> None:
    """RFC 6749 §2.3.1: each part form-urldecoded after the split, so an encoded colon stays
    in the client id and ``+`` is a space."""
    encoded = base64.b64encode(f"{quote('a:b')}:{quote_plus('c d+e:f')}".encode()).decode()
    request = RequestFactory().post("/oauth2/token", HTTP_AUTHORIZATION=f"Basic {encoded}")

    assert _basic_credentials(request) == ("a:b", "c d+e:f")
