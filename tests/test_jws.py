import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from django_tokens import jws
from django_tokens.jws import ExpiredSignedToken, InvalidSignedToken
from tests.keys import (
    RFC7638_RSA_JWK,
    RFC7638_RSA_THUMBPRINT,
    RFC8037_OKP_JWK,
    RFC8037_OKP_THUMBPRINT,
)

ALGORITHMS = ["RS256", "RS512", "ES256", "EdDSA"]
PUBLIC_MEMBERS = {
    "RS256": {"kty", "n", "e"},
    "RS512": {"kty", "n", "e"},
    "ES256": {"kty", "crv", "x", "y"},
    "EdDSA": {"kty", "crv", "x"},
}


@pytest.fixture(scope="module")
def private_keys():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "RS256": rsa_key,
        "RS512": rsa_key,
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


@pytest.fixture
def rsa_key(private_keys):
    return private_keys["RS256"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value) -> str:
    return b64url(json.dumps(value).encode())


def fresh_claims(**extra):
    now = int(time.time())
    return {"sub": "42", "iat": now, "exp": now + 300, **extra}


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sign_and_verify_round_trip(private_keys, algorithm):
    key = private_keys[algorithm]
    claims = fresh_claims(aud="api", iss="https://issuer.example")
    token = jws.sign(claims, key, algorithm, kid="key-1", typ="at+jwt")

    header = jws.unverified_header(token)
    assert header == {"alg": algorithm, "typ": "at+jwt", "kid": "key-1"}
    verified = jws.verify(
        token, key.public_key(), algorithm, audience="api", issuer="https://issuer.example"
    )
    assert verified == claims
    assert jws.unverified_claims(token) == claims


def test_sign_without_kid_leaves_it_out(rsa_key):
    token = jws.sign(fresh_claims(), rsa_key, "RS256", kid=None)
    assert "kid" not in jws.unverified_header(token)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_public_key_from_published_jwk_verifies(private_keys, algorithm):
    key = private_keys[algorithm]
    token = jws.sign(fresh_claims(), key, algorithm, kid=None)
    public_key = jws.public_key_from_jwk(jws.public_jwk(key.public_key(), algorithm))
    assert jws.verify(token, public_key, algorithm)["sub"] == "42"


# -- pinned algorithms ---------------------------------------------------------------------


def test_token_signed_with_another_algorithm_of_the_same_key_is_refused(rsa_key):
    token = jws.sign(fresh_claims(), rsa_key, "RS512", kid=None)
    with pytest.raises(InvalidSignedToken):
        jws.verify(token, rsa_key.public_key(), "RS256")


def test_token_signed_by_another_key_type_is_refused(private_keys):
    token = jws.sign(fresh_claims(), private_keys["ES256"], "ES256", kid=None)
    with pytest.raises(InvalidSignedToken):
        jws.verify(token, private_keys["RS256"].public_key(), "RS256")


def test_token_with_alg_none_is_refused(rsa_key):
    unsigned = f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(fresh_claims())}."
    with pytest.raises(InvalidSignedToken):
        jws.verify(unsigned, rsa_key.public_key(), "RS256")
    library_made = jwt.encode(fresh_claims(), None, algorithm="none")
    with pytest.raises(InvalidSignedToken):
        jws.verify(library_made, rsa_key.public_key(), "RS256")


def test_hs256_signed_with_the_public_key_pem_is_refused(rsa_key):
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT'})}.{b64json(fresh_claims())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64url(signature)}"

    with pytest.raises(InvalidSignedToken):
        jws.verify(forged, rsa_key.public_key(), "RS256")
    with pytest.raises(InvalidSignedToken):
        jws.verify(forged, pem, "RS256")


def test_tampered_payload_is_refused(rsa_key):
    header, _, signature = jws.sign(fresh_claims(), rsa_key, "RS256", kid=None).split(".")
    tampered = f"{header}.{b64json(fresh_claims(sub='1'))}.{signature}"
    with pytest.raises(InvalidSignedToken):
        jws.verify(tampered, rsa_key.public_key(), "RS256")


# -- registered claims ---------------------------------------------------------------------


def test_expired_token_raises_expired_signed_token(rsa_key):
    now = int(time.time())
    token = jws.sign({"iat": now - 120, "exp": now - 60}, rsa_key, "RS256", kid=None)
    with pytest.raises(ExpiredSignedToken):
        jws.verify(token, rsa_key.public_key(), "RS256")
    assert issubclass(ExpiredSignedToken, InvalidSignedToken)


def test_leeway_covers_a_recent_expiry(rsa_key):
    now = int(time.time())
    token = jws.sign({"iat": now - 120, "exp": now - 10}, rsa_key, "RS256", kid=None)
    assert jws.verify(token, rsa_key.public_key(), "RS256", leeway=30)["exp"] == now - 10


@pytest.mark.parametrize("missing", ["exp", "iat"])
def test_required_claims_must_be_present(rsa_key, missing):
    claims = fresh_claims()
    del claims[missing]
    token = jws.sign(claims, rsa_key, "RS256", kid=None)
    with pytest.raises(InvalidSignedToken):
        jws.verify(token, rsa_key.public_key(), "RS256")


def test_claims_of_the_wrong_type_are_refused(rsa_key):
    for claims in (fresh_claims(exp="tomorrow"), fresh_claims(iat=[]), fresh_claims(aud={})):
        token = jws.sign(claims, rsa_key, "RS256", kid=None)
        with pytest.raises(InvalidSignedToken):
            jws.verify(token, rsa_key.public_key(), "RS256", audience="api")


def test_audience_must_match(rsa_key):
    public_key = rsa_key.public_key()
    token = jws.sign(fresh_claims(aud="api"), rsa_key, "RS256", kid=None)
    assert jws.verify(token, public_key, "RS256", audience="api")["aud"] == "api"
    assert jws.verify(token, public_key, "RS256", audience=["other", "api"])["aud"] == "api"
    with pytest.raises(InvalidSignedToken):
        jws.verify(token, public_key, "RS256", audience="other")
    without_aud = jws.sign(fresh_claims(), rsa_key, "RS256", kid=None)
    with pytest.raises(InvalidSignedToken):
        jws.verify(without_aud, public_key, "RS256", audience="api")


def test_issuer_must_match_exactly(rsa_key):
    public_key = rsa_key.public_key()
    token = jws.sign(fresh_claims(iss="https://auth.example"), rsa_key, "RS256", kid=None)
    assert jws.verify(token, public_key, "RS256", issuer="https://auth.example")
    for other in ("https://auth.example.evil", "https://auth.exampl", "https://other.example"):
        with pytest.raises(InvalidSignedToken):
            jws.verify(token, public_key, "RS256", issuer=other)
    without_iss = jws.sign(fresh_claims(), rsa_key, "RS256", kid=None)
    with pytest.raises(InvalidSignedToken):
        jws.verify(without_iss, public_key, "RS256", issuer="https://auth.example")


# -- hostile input -------------------------------------------------------------------------


def test_over_long_token_is_refused_even_when_well_signed(rsa_key):
    token = jws.sign(fresh_claims(pad="x" * jws.MAX_TOKEN_LENGTH), rsa_key, "RS256", kid=None)
    assert len(token) > jws.MAX_TOKEN_LENGTH
    with pytest.raises(InvalidSignedToken, match="too long"):
        jws.verify(token, rsa_key.public_key(), "RS256")
    with pytest.raises(InvalidSignedToken, match="too long"):
        jws.unverified_header(token)
    with pytest.raises(InvalidSignedToken, match="too long"):
        jws.unverified_claims(token)


_HEADER = b64json({"alg": "RS256", "typ": "JWT", "kid": "k"})
_PAYLOAD = b64json({"sub": "42", "iat": 1_700_000_000, "exp": 4_000_000_000})
_SIGNATURE = b64url(bytes(256))
_NON_UTF8 = b64url(b"\xff\xfe{")
_DEEPLY_NESTED = b64url(b"[" * 2500 + b"]" * 2500)

MALFORMED = {
    "empty": "",
    "one segment": "abc",
    "four segments": f"{_HEADER}.{_PAYLOAD}.{_SIGNATURE}.x",
    "not base64": "!!!.###.$$$",
    "non-utf8 header": f"{_NON_UTF8}.{_PAYLOAD}.{_SIGNATURE}",
    "header is a list": f"{b64json([1])}.{_PAYLOAD}.{_SIGNATURE}",
    "header is a number": f"{b64json(1)}.{_PAYLOAD}.{_SIGNATURE}",
    "kid is not a string": f"{b64json({'alg': 'RS256', 'kid': 1})}.{_PAYLOAD}.{_SIGNATURE}",
    "deeply nested header": f"{_DEEPLY_NESTED}.{_PAYLOAD}.{_SIGNATURE}",
    "non-ascii text": "\u00e9.\u00e9.\u00e9",
    "lone surrogate": "\ud800.x.y",
    "non-utf8 bytes": b"\xff\xfe.\xff.\xff",
}
MALFORMED_PAYLOAD = {
    "non-utf8 payload": f"{_HEADER}.{_NON_UTF8}.{_SIGNATURE}",
    "payload is a list": f"{_HEADER}.{b64json([1])}.{_SIGNATURE}",
    "deeply nested payload": f"{_HEADER}.{_DEEPLY_NESTED}.{_SIGNATURE}",
    "payload not base64": f"{_HEADER}.!!!.{_SIGNATURE}",
}


@pytest.mark.parametrize("token", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_token_raises_invalid_signed_token(rsa_key, token):
    for parse in (
        jws.unverified_header,
        jws.unverified_claims,
        lambda t: jws.verify(t, rsa_key.public_key(), "RS256"),
    ):
        with pytest.raises(InvalidSignedToken):
            parse(token)


@pytest.mark.parametrize("token", MALFORMED_PAYLOAD.values(), ids=MALFORMED_PAYLOAD.keys())
def test_malformed_payload_raises_invalid_signed_token(rsa_key, token):
    for parse in (jws.unverified_claims, lambda t: jws.verify(t, rsa_key.public_key(), "RS256")):
        with pytest.raises(InvalidSignedToken):
            parse(token)


@pytest.mark.parametrize(
    "payload",
    [b"[1]", b"null", b'"text"', b"\xff\xfe{}", b"{", b"[" * 2500 + b"]" * 2500],
    ids=["list", "null", "string", "non-utf8", "truncated", "deeply nested"],
)
def test_well_signed_payload_that_is_not_a_json_object_is_refused(rsa_key, payload):
    token = jwt.PyJWS().encode(payload, rsa_key, algorithm="RS256")
    with pytest.raises(InvalidSignedToken):
        jws.verify(token, rsa_key.public_key(), "RS256")
    with pytest.raises(InvalidSignedToken):
        jws.unverified_claims(token)


# -- JWKs and thumbprints ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_public_jwk_has_only_key_members(private_keys, algorithm):
    jwk = jws.public_jwk(private_keys[algorithm].public_key(), algorithm)
    assert set(jwk) == PUBLIC_MEMBERS[algorithm]
    assert not {"kid", "alg", "use", "key_ops", "d", "p", "q"} & set(jwk)


def test_jwk_thumbprint_matches_rfc_7638_example():
    assert jws.jwk_thumbprint(RFC7638_RSA_JWK) == RFC7638_RSA_THUMBPRINT


def test_jwk_thumbprint_matches_rfc_8037_example():
    assert jws.jwk_thumbprint(RFC8037_OKP_JWK) == RFC8037_OKP_THUMBPRINT


def test_jwk_thumbprint_ignores_optional_members_and_their_order():
    reordered = {"kid": "other", "use": "sig", **dict(reversed(list(RFC7638_RSA_JWK.items())))}
    assert jws.jwk_thumbprint(reordered) == RFC7638_RSA_THUMBPRINT


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_thumbprints_differ_between_keys(private_keys, algorithm):
    first = jws.public_jwk(private_keys[algorithm].public_key(), algorithm)
    other_key = {
        "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "RS512": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate,
    }[algorithm]()
    second = jws.public_jwk(other_key.public_key(), algorithm)
    assert jws.jwk_thumbprint(first) != jws.jwk_thumbprint(second)
    assert len(jws.jwk_thumbprint(first)) == 43


@pytest.mark.parametrize(
    "headers",
    [{"crit": ["exp"], "exp": 1}, {"crit": ["b64"], "b64": True}],
    ids=["unknown extension", "b64, which PyJWT understands but no token here uses"],
)
def test_critical_header_extensions_are_refused(rsa_key, headers):
    # Built by hand: PyJWT's encoder drops a "b64": true header.
    signing_input = f"{b64json({'alg': 'RS256', **headers})}.{b64json(fresh_claims())}"
    signer = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
    token = f"{signing_input}.{b64url(signer.sign(signing_input.encode(), rsa_key))}"
    with pytest.raises(InvalidSignedToken):
        jws.unverified_header(token)
    with pytest.raises(InvalidSignedToken):
        jws.verify(token, rsa_key.public_key(), "RS256")


def test_error_text_never_quotes_the_token(rsa_key):
    header = b64json({"alg": "RS256", "typ": "JWT"})
    payload = b64url("caf\u00e9-marker".encode("utf-16-le"))
    token = f"{header}.{payload}.{b64url(b'x' * 256)}"
    with pytest.raises(InvalidSignedToken) as raised:
        jws.verify(token, rsa_key.public_key(), "RS256")
    assert "marker" not in str(raised.value)
    assert "codec" not in str(raised.value)
