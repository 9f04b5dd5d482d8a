"""The one place that talks to PyJWT: sign, read a header, verify with a pinned algorithm.

Callers never let a token's header choose the algorithm: verification takes the algorithm
that belongs to the key (RFC 8725 §3.1), and ``jku``/``x5u``/``jwk`` headers are never used.
Library errors are translated into :class:`InvalidSignedToken` here, chained with ``from``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

#: Tokens longer than this are refused before any parsing.
MAX_TOKEN_LENGTH = 8192
#: RFC 7515 §7.1: three base64url segments (RFC 7515 §2: no padding, no other characters).
_COMPACT = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

_JWK_EXPORTERS: dict[str, Any] = {
    "RS256": RSAAlgorithm,
    "RS384": RSAAlgorithm,
    "RS512": RSAAlgorithm,
    "ES256": ECAlgorithm,
    "EdDSA": OKPAlgorithm,
}

_decoder = jwt.PyJWT()

_PUBLIC_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidSignatureError, "Token signature is invalid."),
    (jwt.InvalidAudienceError, "Token audience is not accepted."),
    (jwt.InvalidIssuerError, "Token issuer is not accepted."),
    (jwt.ImmatureSignatureError, "Token is not valid yet."),
    (jwt.MissingRequiredClaimError, "Token lacks a required claim."),
    (jwt.InvalidAlgorithmError, "Token algorithm is not accepted."),
)


class InvalidSignedToken(Exception):
    """The token is malformed, wrongly signed, or its registered claims do not hold."""


class ExpiredSignedToken(InvalidSignedToken):
    """The token was valid once but its ``exp`` has passed."""


def sign(
    claims: Mapping[str, Any], key: Any, algorithm: str, *, kid: str | None, typ: str = "JWT"
) -> str:
    headers: dict[str, Any] = {"typ": typ}
    if kid is not None:
        headers["kid"] = kid
    return jwt.encode(dict(claims), key, algorithm=algorithm, headers=headers)


def _check_compact(token: str | bytes) -> None:
    """Refuse what is too long or not the compact serialization, before any parsing.

    PyJWT's base64 decoding skips padding and stray characters, so ``<token>==`` would
    verify as the token itself; as another string it would escape anything keyed by the
    token's digest (the revocation marks of OAuth 2.0 access tokens)."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidSignedToken("Token is too long.")
    if isinstance(token, str):
        if not token.isascii():
            raise InvalidSignedToken("Token is malformed.")
        token = token.encode("ascii")
    if not isinstance(token, bytes) or not _COMPACT.fullmatch(token):
        raise InvalidSignedToken("Token is malformed.")


def unverified_header(token: str | bytes) -> dict[str, Any]:
    """The token's JOSE header, parsed but not trusted. Raises InvalidSignedToken."""
    _check_compact(token)
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.InvalidTokenError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidSignedToken("Token is malformed.") from exc
    if not isinstance(header, dict):
        raise InvalidSignedToken("Token header is not an object.")
    _refuse_critical(header)
    return header


def unverified_claims(token: str | bytes) -> dict[str, Any]:
    """The token's claims, parsed but not trusted (to find which key to verify with)."""
    _check_compact(token)
    try:
        claims = _decoder.decode(token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidSignedToken("Token is malformed.") from exc
    return claims


def verify(
    token: str | bytes,
    key: Any,
    algorithm: str,
    *,
    audience: str | Iterable[str] | None = None,
    issuer: str | None = None,
    leeway: int = 0,
    require: Iterable[str] = ("exp", "iat"),
) -> dict[str, Any]:
    """Verify the signature with ``algorithm`` only, then the registered claims."""
    _check_compact(token)
    options: Any = {"require": list(require), "verify_aud": audience is not None}
    try:
        decoded = _decoder.decode_complete(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options=options,
        )
    except jwt.ExpiredSignatureError as exc:
        raise ExpiredSignedToken("Token has expired.") from exc
    except (jwt.InvalidTokenError, UnicodeDecodeError, ValueError, TypeError) as exc:
        # The library's text can quote the token's bytes: it stays out of error bodies.
        raise InvalidSignedToken(_public_reason(exc)) from exc
    _refuse_critical(decoded["header"])
    claims: dict[str, Any] = decoded["payload"]
    return claims


def _refuse_critical(header: Mapping[str, Any]) -> None:
    if "crit" in header:
        # RFC 7515 §4.1.11: extensions listed as critical must be understood; none are here.
        raise InvalidSignedToken("Token header names critical extensions.")


def _public_reason(exc: Exception) -> str:
    for error_type, reason in _PUBLIC_REASONS:
        if isinstance(exc, error_type):
            return reason
    return "Token is invalid."


def public_jwk(public_key: Any, algorithm: str) -> dict[str, Any]:
    """The RFC 7517 JWK of a public key (no ``kid``/``alg``/``use``: the keystore adds them)."""
    exported = _JWK_EXPORTERS[algorithm].to_jwk(public_key, as_dict=True)
    return {
        name: value
        for name, value in exported.items()
        if name not in ("kid", "alg", "use", "key_ops")
    }


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Any:
    loader: Any = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}[jwk["kty"]]
    return loader.from_jwk(dict(jwk))


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
