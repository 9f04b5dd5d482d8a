"""Hostile tokens (RFC 8725; RFC 9700 §4): a table of named forgers, each deriving one hostile
token from a genuine one.

A forger changes one thing. The rest of the header and claims are the genuine token's, and
where a signature is needed it is made with the genuine token's own key, so that the change
is the only fault; or with a key the attacker has: their own, or the server's public key.
Three kinds of genuine token are forged: access tokens and refresh JWTs (signed by the
keystore) and API-key assertions (HMACs with the key's shared secret); opaque refresh tokens
get a table of their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from django_tokens import jws

ACCESS = "access"
REFRESH = "refresh"
ASSERTION = "assertion"
KEYSTORE = frozenset({ACCESS, REFRESH})
EVERY_KIND = frozenset({ACCESS, REFRESH, ASSERTION})

#: The secret of an HS256 key (``kty: oct``, RFC 7518 §6.4) that the attacker's JWKS publishes.
ATTACKER_OCT_SECRET = b"attacker-chosen-hmac-secret-" + b"x" * 36


# -- encoding ------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def hmac_sign(algorithm: str, key: bytes, message: bytes) -> bytes:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    return hmac.new(key, message, digest[algorithm]).digest()


def compact(header: bytes, payload: bytes, algorithm: str | None, key: Any) -> str:
    """A JWS in compact serialization over these exact header and payload bytes.

    ``algorithm`` None leaves the signature empty. HMAC keys may be any bytes, including a
    PEM public key (which PyJWT itself refuses to sign with)."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    if algorithm is None:
        return f"{signing_input}."
    if algorithm.startswith("HS"):
        signature = hmac_sign(algorithm, key, signing_input.encode())
    else:
        signature = jwt.get_algorithm_by_name(algorithm).sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


# -- the attacker --------------------------------------------------------------------------


class _RecordingHandler(BaseHTTPRequestHandler):
    """Serves the attacker's JWKS (or certificate) at every path and records each request."""

    body: bytes = b""
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Attacker:
    """The attacker's keys, and a web server of theirs that records every request it gets:
    tokens whose headers point at it (``jku``, ``x5u``, a URL as ``kid``) must never make
    the service fetch anything."""

    url: str
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    ed_key: ed25519.Ed25519PrivateKey
    jwk: dict[str, Any]
    certificate: str
    requests: list[str] = field(default_factory=list)

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])


def _self_signed_certificate(key: rsa.RSAPrivateKey) -> str:
    """An X.509 certificate for ``key``, base64 DER, as an ``x5c`` entry carries it."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.example")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


@cache
def _attacker_keys() -> tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, Any]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
        ed25519.Ed25519PrivateKey.generate(),
    )


@contextmanager
def attacker_site() -> Iterator[Attacker]:
    """The attacker's keys and recording server on 127.0.0.1, stopped on exit."""
    rsa_key, ec_key, ed_key = _attacker_keys()
    public = jws.public_jwk(rsa_key.public_key(), "RS256")
    kid = jws.jwk_thumbprint(public)
    jwk = {**public, "kid": kid, "alg": "RS256", "use": "sig"}
    oct_jwk = {"kty": "oct", "kid": kid, "alg": "HS256", "k": b64url(ATTACKER_OCT_SECRET)}
    seen: list[str] = []
    handler = type(
        "AttackerHandler",
        (_RecordingHandler,),
        {"body": json_bytes({"keys": [jwk, oct_jwk]}), "seen": seen},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Attacker(
            url=f"http://127.0.0.1:{server.server_address[1]}",
            rsa_key=rsa_key,
            ec_key=ec_key,
            ed_key=ed_key,
            jwk=jwk,
            certificate=_self_signed_certificate(rsa_key),
            requests=seen,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- the genuine token ---------------------------------------------------------------------


@dataclass(frozen=True)
class OtherKey:
    """Another key a forger may name: its ``kid``, and the key that signs with it (None: the
    genuine token's own key, so that only the ``kid`` is wrong)."""

    kid: str
    key: Any = None


@dataclass(frozen=True)
class Genuine:
    """A genuine token, what signs it, and what the attacker has to hand."""

    token: str
    kind: str
    algorithm: str
    #: The key that signed it: the keystore's private key, or the API key's secret (bytes).
    key: Any
    #: The public half of the keystore's active key (the attacker can read it from the JWKS).
    keystore_public_key: Any
    attacker: Attacker
    #: Other keys, by name: "next key" (keystore), "revoked key", "another user's key".
    others: Mapping[str, OtherKey] = field(default_factory=dict)

    @property
    def segments(self) -> list[str]:
        return self.token.split(".")

    @property
    def header(self) -> dict[str, Any]:
        return dict(json.loads(unb64url(self.segments[0])))

    @property
    def claims(self) -> dict[str, Any]:
        return dict(json.loads(unb64url(self.segments[1])))

    def sign(
        self,
        header: Mapping[str, Any] | bytes | None = None,
        claims: Mapping[str, Any] | bytes | None = None,
        *,
        algorithm: str | None = "",
        key: Any = None,
    ) -> str:
        """The genuine header and claims, or these instead (a mapping, or raw bytes), signed
        with the genuine key and algorithm unless others are given."""
        header = self.header if header is None else header
        claims = self.claims if claims is None else claims
        algorithm = self.algorithm if algorithm == "" else algorithm
        if isinstance(header, Mapping):
            header = json_bytes({**header, "alg": algorithm or "none"})
        claims_bytes = claims if isinstance(claims, bytes) else json_bytes(dict(claims))
        return compact(header, claims_bytes, algorithm, self.key if key is None else key)

    def with_header(self, **changes: Any) -> str:
        """Re-signed with the genuine key; a change to None drops that header parameter."""
        header = {**self.header, **changes}
        return self.sign({name: value for name, value in header.items() if value is not None})

    def with_claims(self, **changes: Any) -> str:
        """Re-signed with the genuine key; a change to None drops that claim."""
        claims = {**self.claims, **changes}
        return self.sign(header=None, claims={n: v for n, v in claims.items() if v is not None})


Forge = Callable[[Genuine], str]


@dataclass(frozen=True)
class Forgery:
    name: str
    forge: Forge
    kinds: frozenset[str] = EVERY_KIND


# -- forgers: the algorithm ----------------------------------------------------------------


def _alg_none(casing: str, *, keep_signature: bool) -> Forge:
    def forge(genuine: Genuine) -> str:
        header = json_bytes({**genuine.header, "alg": casing})
        token = compact(header, json_bytes(genuine.claims), None, None)
        return token + genuine.segments[2] if keep_signature else token

    return forge


def _public_key_bytes(public_key: Any, form: str) -> bytes:
    if form == "PEM":
        return bytes(
            public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    if form == "DER":
        return bytes(
            public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    if form == "OpenSSH":
        return bytes(
            public_key.public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
        )
    assert form == "JWK JSON"
    algorithm = "ES256" if isinstance(public_key, ec.EllipticCurvePublicKey) else "RS256"
    return json.dumps(jws.public_jwk(public_key, algorithm)).encode()


def _hmac_keyed_with_the_public_key(algorithm: str, form: str) -> Forge:
    """Algorithm confusion: an HMAC whose key is the keystore's public key, which anyone can
    read from the JWKS (RFC 8725 §2.1)."""

    def forge(genuine: Genuine) -> str:
        key = _public_key_bytes(genuine.keystore_public_key, form)
        return genuine.sign(algorithm=algorithm, key=key)

    return forge


def _signed_by_the_attacker(algorithm: str) -> Forge:
    def forge(genuine: Genuine) -> str:
        attacker = genuine.attacker
        keys = {"ES256": attacker.ec_key, "EdDSA": attacker.ed_key}
        return genuine.sign(algorithm=algorithm, key=keys.get(algorithm, attacker.rsa_key))

    return forge


def _another_algorithm_with_the_genuine_key(algorithm: str) -> Forge:
    """The right key under an algorithm other than the one pinned to it."""
    return lambda genuine: genuine.sign(algorithm=algorithm)


def _alg_in_lower_case(genuine: Genuine) -> str:
    header = json_bytes({**genuine.header, "alg": genuine.algorithm.lower()})
    return genuine.sign(header)


def _alg_missing(genuine: Genuine) -> str:
    header = {name: value for name, value in genuine.header.items() if name != "alg"}
    return genuine.sign(json_bytes(header))


# -- forgers: the key id -------------------------------------------------------------------


def _kid(value: Any) -> Forge:
    return lambda genuine: genuine.with_header(kid=value)


def _kid_dropped(genuine: Genuine) -> str:
    header = {name: value for name, value in genuine.header.items() if name != "kid"}
    return genuine.sign(header)


def _kid_of(other: str) -> Forge:
    def forge(genuine: Genuine) -> str:
        named = genuine.others[other]
        header = {**genuine.header, "kid": named.kid}
        return genuine.sign(header, key=named.key)

    return forge


def _kid_with(suffix: str) -> Forge:
    return lambda genuine: genuine.with_header(kid=genuine.header["kid"] + suffix)


def _kid_is_the_attackers_url(genuine: Genuine) -> str:
    return genuine.with_header(kid=f"{genuine.attacker.url}/jwks.json")


# -- forgers: headers that point at keys ---------------------------------------------------


def _pointing(*, kid: str, **headers: Callable[[Attacker], Any]) -> Forge:
    """Signed with the attacker's RSA key; the header points at the attacker's key (and names
    the attacker's ``kid``, or the genuine one)."""

    def forge(genuine: Genuine) -> str:
        attacker = genuine.attacker
        header = {
            **genuine.header,
            "kid": attacker.kid if kid == "attacker" else genuine.header.get("kid"),
            **{name: value(attacker) for name, value in headers.items()},
        }
        return genuine.sign(header, algorithm="RS256", key=attacker.rsa_key)

    return forge


def _jku_to_an_oct_key(genuine: Genuine) -> str:
    """HS256 with a secret the attacker's JWKS publishes as an ``oct`` key."""
    attacker = genuine.attacker
    header = {**genuine.header, "kid": attacker.kid, "jku": f"{attacker.url}/jwks.json"}
    return genuine.sign(header, algorithm="HS256", key=ATTACKER_OCT_SECRET)


def _embedded_oct_jwk(genuine: Genuine) -> str:
    """HS256 with a secret the header itself carries as a ``jwk``."""
    jwk = {"kty": "oct", "k": b64url(ATTACKER_OCT_SECRET)}
    header = {**genuine.header, "jwk": jwk}
    return genuine.sign(header, algorithm="HS256", key=ATTACKER_OCT_SECRET)


# -- forgers: critical extensions ----------------------------------------------------------


def _crit(names: list[str], **extensions: Any) -> Forge:
    return lambda genuine: genuine.with_header(crit=names, **extensions)


def _unencoded_payload(*, detached: bool, crit: bool) -> Forge:
    """RFC 7797 ``b64: false``: the signature covers the raw payload, which travels as it
    is (or detached, leaving the middle segment empty)."""

    def forge(genuine: Genuine) -> str:
        header = {**genuine.header, "b64": False, **({"crit": ["b64"]} if crit else {})}
        encoded_header = b64url(json_bytes(header))
        payload = json.dumps(genuine.claims, separators=(",", ":"))
        signing_input = f"{encoded_header}.{payload}".encode()
        if genuine.algorithm.startswith("HS"):
            signature = hmac_sign(genuine.algorithm, genuine.key, signing_input)
        else:
            signature = jwt.get_algorithm_by_name(genuine.algorithm).sign(
                signing_input, genuine.key
            )
        middle = "" if detached else payload
        return f"{encoded_header}.{middle}.{b64url(signature)}"

    return forge


# -- forgers: claims -----------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


def _expired(genuine: Genuine) -> str:
    expired_at = _now() - 3600
    return genuine.with_claims(exp=expired_at, iat=expired_at - 60)


def _expired_beyond_the_leeway(genuine: Genuine) -> str:
    expired_at = _now() - 45
    return genuine.with_claims(exp=expired_at, iat=expired_at - 60)


def _not_yet_valid(genuine: Genuine) -> str:
    return genuine.with_claims(nbf=_now() + 3600)


def _issued_far_in_the_future(genuine: Genuine) -> str:
    issued_at = _now() + 10 * 365 * 86400
    return genuine.with_claims(iat=issued_at, exp=issued_at + 60)


def _issued_beyond_the_leeway(genuine: Genuine) -> str:
    issued_at = _now() + 120
    return genuine.with_claims(iat=issued_at, exp=issued_at + 60)


def _claims(**changes: Any) -> Forge:
    return lambda genuine: genuine.with_claims(**changes)


def _other_typ(genuine: Genuine) -> str:
    """The ``typ`` of another kind of token: ``at+jwt`` where ``JWT`` is genuine, else ``JWT``."""
    typ = str(genuine.header.get("typ", "JWT"))
    return genuine.with_header(typ="JWT" if typ.lower() == "at+jwt" else "at+jwt")


def _typ(value: Any) -> Forge:
    return lambda genuine: genuine.with_header(typ=value)


def _lifetime_over_the_maximum(genuine: Genuine) -> str:
    issued_at = _now()
    return genuine.with_claims(iat=issued_at, exp=issued_at + 3600)


def _iss_instead_of_kid(value: str) -> Forge:
    """No ``kid``, so that the key id is read from ``iss``."""

    def forge(genuine: Genuine) -> str:
        header = {name: v for name, v in genuine.header.items() if name != "kid"}
        return genuine.sign(header, {**genuine.claims, "iss": value})

    return forge


# -- forgers: the compact serialization ----------------------------------------------------


def _payload_tampered(genuine: Genuine) -> str:
    header, _, signature = genuine.segments
    claims = {**genuine.claims, "exp": genuine.claims["exp"] + 1}
    return f"{header}.{b64url(json_bytes(claims))}.{signature}"


def _header_tampered(genuine: Genuine) -> str:
    _, payload, signature = genuine.segments
    return f"{b64url(json_bytes({**genuine.header, 'x': 1}))}.{payload}.{signature}"


def _signature_bit_flipped(genuine: Genuine) -> str:
    header, payload, signature = genuine.segments
    raw = bytearray(unb64url(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64url(bytes(raw))}"


def _signature_truncated(genuine: Genuine) -> str:
    return genuine.token[:-4]


def _reordered(order: tuple[int, int, int]) -> Forge:
    return lambda genuine: ".".join(genuine.segments[index] for index in order)


def _jwe_looking(genuine: Genuine) -> str:
    """Five segments under a JWE header (RFC 7516): key-wrapping algorithm, content cipher."""
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": genuine.header.get("kid")}
    parts = [b64url(json_bytes(header)), b64url(b"k" * 256), b64url(b"i" * 12)]
    return ".".join([*parts, genuine.segments[1], b64url(b"t" * 16)])


def _signature_alternate_alphabet(genuine: Genuine) -> str:
    """The signature in base64's standard alphabet (``+``, ``/``): the same bytes, but not
    base64url (RFC 7515 §2)."""
    header, payload, signature = genuine.segments
    swapped = signature.translate(str.maketrans("-_", "+/"))
    assert swapped != signature, "the genuine signature has no '-' or '_' to swap"
    return f"{header}.{payload}.{swapped}"


def _signature_with_loose_trailing_bits(genuine: Genuine) -> str:
    """The last base64url character with different unused low bits: a decoder that ignores
    them reads the same signature from another token string."""
    header, payload, signature = genuine.segments
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused_bits = {2: 4, 3: 2}.get(len(signature) % 4, 0)
    assert unused_bits, "this signature length has no unused bits"
    last = alphabet.index(signature[-1])
    return f"{header}.{payload}.{signature[:-1]}{alphabet[last ^ 1]}"


def _inserted(where: int, text: str) -> Forge:
    """``text`` inserted into segment ``where`` (0 header, 1 payload, 2 signature; at its
    middle), or appended to it (``where`` + 10)."""

    def forge(genuine: Genuine) -> str:
        segments = genuine.segments
        index, at_end = (where - 10, True) if where >= 10 else (where, False)
        part = segments[index]
        middle = len(part) if at_end else len(part) // 2
        segments[index] = part[:middle] + text + part[middle:]
        return ".".join(segments)

    return forge


# -- forgers: size and encoding ------------------------------------------------------------


def _padded_claims(size: int) -> Forge:
    """Validly signed, ``size`` characters long or more."""

    def forge(genuine: Genuine) -> str:
        token = genuine.with_claims(padding="x" * size)
        assert len(token) > size
        return token

    return forge


def _header_bytes(raw: bytes) -> Forge:
    """This exact header segment, signed with the genuine key."""
    return lambda genuine: genuine.sign(raw)


def _payload_bytes(raw: bytes) -> Forge:
    """This exact payload, signed with the genuine key."""
    return lambda genuine: genuine.sign(header=None, claims=raw)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _header_with_nested_member(depth: int) -> Forge:
    """A well-formed header object with one member nested ``depth`` arrays deep."""

    def forge(genuine: Genuine) -> str:
        header = json_bytes({**genuine.header, "alg": genuine.algorithm})
        return genuine.sign(header[:-1] + b',"x":' + _nested(depth) + b"}")

    return forge


def _non_ascii_in_the_payload_segment(genuine: Genuine) -> str:
    header, payload, signature = genuine.segments
    return f"{header}.{payload[:8]}\u00e9\u4e2d{payload[8:]}.{signature}"


def _constant(token: str) -> Forge:
    return lambda genuine: token


FORGERIES: list[Forgery] = [
    # alg: none, in every casing, with and without a signature segment (RFC 8725 §2.1).
    *[
        Forgery(f"alg {casing}, signature {'kept' if keep else 'stripped'}", forge)
        for casing in ("none", "None", "NONE", "nOnE")
        for keep in (False, True)
        for forge in [_alg_none(casing, keep_signature=keep)]
    ],
    Forgery("alg missing", _alg_missing),
    Forgery("alg in lower case", _alg_in_lower_case),
    # Algorithm confusion: HMAC keyed with the public key (RFC 8725 §2.1, §3.1).
    *[
        Forgery(f"{algorithm} keyed with the keystore's public key ({form})", forge)
        for algorithm in ("HS256", "HS384", "HS512")
        for form in ("PEM", "DER", "JWK JSON", "OpenSSH")
        for forge in [_hmac_keyed_with_the_public_key(algorithm, form)]
    ],
    *[
        Forgery(f"{algorithm} by the attacker's key, genuine kid", forge)
        for algorithm in ("RS256", "PS256", "ES256", "EdDSA")
        for forge in [_signed_by_the_attacker(algorithm)]
    ],
    *[
        Forgery(f"{algorithm} with the genuine key", forge, KEYSTORE)
        for algorithm in ("RS384", "RS512", "PS256")
        for forge in [_another_algorithm_with_the_genuine_key(algorithm)]
    ],
    # kid (RFC 8725 §3.10): made up, mistyped, path- and URL-like, over-long, NUL.
    Forgery("kid unknown", _kid("unknown-kid")),
    Forgery("kid empty", _kid("")),
    Forgery("kid an integer", _kid(7)),
    Forgery("kid null", _kid(None)),
    Forgery("kid absent", _kid_dropped),
    Forgery("kid a list", lambda genuine: genuine.with_header(kid=[genuine.header["kid"]])),
    Forgery("kid an object", lambda genuine: genuine.with_header(kid={"kid": "x"})),
    Forgery("kid a boolean", _kid(True)),
    Forgery("kid ../../etc/passwd", _kid("../../../../../../etc/passwd")),
    Forgery("kid /dev/zero", _kid("/dev/zero")),
    Forgery("kid file:///etc/passwd", _kid("file:///etc/passwd")),
    Forgery("kid the attacker's URL", _kid_is_the_attackers_url),
    Forgery("kid SQL", _kid("' OR '1'='1")),
    Forgery("kid over-long (2,000 characters)", _kid("k" * 2000)),
    Forgery("kid genuine plus NUL", _kid_with("\x00")),
    Forgery("kid NUL only", _kid("\x00")),
    Forgery("kid genuine plus a space", _kid_with(" ")),
    Forgery("kid a lone surrogate", _kid("\ud800")),
    Forgery("kid of the next key", _kid_of("next key"), KEYSTORE),
    Forgery("kid of a revoked key, signed with its secret", _kid_of("revoked key"), {ASSERTION}),
    Forgery("kid of another user's key", _kid_of("another user's key"), {ASSERTION}),
    # Headers that point at keys: never fetched, never trusted (RFC 8725 §3.10).
    Forgery("jku to the attacker's JWKS", _pointing(kid="attacker", jku=lambda a: a.url)),
    Forgery(
        "jku to the attacker's JWKS, genuine kid",
        _pointing(kid="genuine", jku=lambda a: f"{a.url}/.well-known/jwks.json"),
    ),
    Forgery("x5u to the attacker's certificate", _pointing(kid="genuine", x5u=lambda a: a.url)),
    Forgery("jwk: the attacker's key", _pointing(kid="attacker", jwk=lambda a: a.jwk)),
    Forgery("jwk: the attacker's key, genuine kid", _pointing(kid="genuine", jwk=lambda a: a.jwk)),
    Forgery(
        "x5c: the attacker's certificate", _pointing(kid="genuine", x5c=lambda a: [a.certificate])
    ),
    Forgery(
        "jku, x5u, jwk and x5c together",
        _pointing(
            kid="attacker",
            jku=lambda a: f"{a.url}/jwks",
            x5u=lambda a: f"{a.url}/cert",
            jwk=lambda a: a.jwk,
            x5c=lambda a: [a.certificate],
        ),
    ),
    Forgery("jku to an oct key of the attacker's, HS256", _jku_to_an_oct_key),
    Forgery("jwk: an oct key, HS256 with it", _embedded_oct_jwk),
    # Critical extensions nobody here understands (RFC 7515 §4.1.11), unencoded payloads.
    Forgery("crit: an unknown extension", _crit(["urn:example:x"], **{"urn:example:x": True})),
    Forgery("crit: a registered claim name", _crit(["exp"])),
    Forgery("crit: empty list", _crit([])),
    Forgery("crit: not a list", _crit("b64")),
    Forgery("b64 false, crit b64", _unencoded_payload(detached=False, crit=True)),
    Forgery("b64 false, crit b64, detached", _unencoded_payload(detached=True, crit=True)),
    Forgery("b64 false without crit", _unencoded_payload(detached=False, crit=False)),
    # Time and registered claims (RFC 7519 §4.1; RFC 8725 §3.8, §3.9).
    Forgery("expired an hour ago", _expired),
    Forgery("expired beyond the leeway", _expired_beyond_the_leeway),
    Forgery("not yet valid (nbf)", _not_yet_valid),
    Forgery("iat ten years ahead", _issued_far_in_the_future),
    Forgery("iat beyond the leeway", _issued_beyond_the_leeway),
    Forgery("exp missing", _claims(exp=None)),
    Forgery("iat missing", _claims(iat=None)),
    Forgery("exp a string", _claims(exp="tomorrow")),
    Forgery("exp a list", lambda genuine: genuine.with_claims(exp=[genuine.claims["exp"]])),
    Forgery("iss wrong", _claims(iss="https://issuer.example"), KEYSTORE),
    Forgery("iss missing", _claims(iss=None), KEYSTORE),
    Forgery("aud wrong", _claims(aud="another-api"), KEYSTORE),
    Forgery("aud a list without ours", _claims(aud=["another-api", "third-api"]), KEYSTORE),
    Forgery("aud missing", _claims(aud=None), KEYSTORE),
    Forgery("sub missing", _claims(sub=None), KEYSTORE),
    Forgery("sid missing", _claims(sid=None), {REFRESH}),
    Forgery("jti missing", _claims(jti=None), {REFRESH, ASSERTION}),
    Forgery("typ claim not Refresh", _claims(typ="Bearer"), {REFRESH}),
    Forgery("typ of another kind of token", _other_typ),
    Forgery("typ absent", _typ(None), KEYSTORE),
    Forgery("typ an object", _typ({"typ": "JWT"})),
    Forgery("exp - iat over the maximum", _lifetime_over_the_maximum, {ASSERTION}),
    Forgery("jti a lone surrogate", _claims(jti="\ud800"), {ASSERTION}),
    Forgery("jti with NUL", _claims(jti="jti\x00"), {ASSERTION}),
    Forgery("no kid, iss names no key", _iss_instead_of_kid("dtk_" + "0" * 24), {ASSERTION}),
    Forgery("no kid, iss with NUL", _iss_instead_of_kid("dtk_\x00"), {ASSERTION}),
    Forgery("no kid, iss a lone surrogate", _iss_instead_of_kid("dtk_\ud800"), {ASSERTION}),
    # The compact serialization (RFC 7515 §7.1).
    Forgery("payload tampered", _payload_tampered),
    Forgery("header tampered", _header_tampered),
    Forgery("signature with one bit flipped", _signature_bit_flipped),
    Forgery("signature truncated", _signature_truncated),
    Forgery("signature stripped, dot kept", lambda g: g.token.rpartition(".")[0] + "."),
    Forgery("signature stripped, two segments", lambda g: g.token.rpartition(".")[0]),
    Forgery("segments reordered: payload.header.signature", _reordered((1, 0, 2))),
    Forgery("segments reordered: signature.payload.header", _reordered((2, 1, 0))),
    Forgery("four segments", lambda genuine: genuine.token + "." + genuine.segments[2]),
    Forgery("five segments, genuine first", lambda genuine: genuine.token + ".."),
    Forgery("five segments, JWE-looking", _jwe_looking),
    Forgery("signature in base64's standard alphabet", _signature_alternate_alphabet),
    Forgery("signature with loose trailing bits", _signature_with_loose_trailing_bits),
    Forgery("padding = after the signature", _inserted(12, "==")),
    Forgery("padding = inside the payload", _inserted(1, "=")),
    Forgery("padding = after the header", _inserted(10, "=")),
    Forgery("tab inside the signature", _inserted(2, "\t")),
    Forgery("space inside the header", _inserted(0, " ")),
    Forgery("newline inside the payload", _inserted(1, "\n")),
    # Size, encoding and parser limits.
    Forgery("validly signed, over 8 KB", _padded_claims(8300)),
    Forgery("validly signed, about 1 MB", _padded_claims(1_000_000)),
    Forgery("header not JSON", _header_bytes(b"not json")),
    Forgery("header a JSON array", _header_bytes(b'["alg","HS256"]')),
    Forgery("header a JSON string", _header_bytes(b'"RS256"')),
    Forgery("header a JSON number", _header_bytes(b"256")),
    Forgery("header JSON null", _header_bytes(b"null")),
    Forgery("header not UTF-8", _header_bytes(b'{"alg":"HS256","kid":"\xff\xfe"}')),
    Forgery("header nested 10,000 arrays deep", _header_bytes(_nested(10_000))),
    Forgery("header nested 3,000 arrays deep (under 8 KB)", _header_bytes(_nested(3_000))),
    Forgery("header member nested 2,500 arrays deep", _header_with_nested_member(2_500)),
    Forgery("payload not JSON, signed", _payload_bytes(b"not json")),
    Forgery("payload a JSON array, signed", _payload_bytes(b"[1,2,3]")),
    Forgery("payload a JSON string, signed", _payload_bytes(b'"claims"')),
    Forgery("payload a JSON number, signed", _payload_bytes(b"1e400")),
    Forgery("payload not UTF-8, signed", _payload_bytes(b'{"sub":"\xff\xfe"}')),
    Forgery("payload nested 3,000 arrays deep, signed", _payload_bytes(_nested(3_000))),
    Forgery("non-ASCII characters in the payload segment", _non_ascii_in_the_payload_segment),
    Forgery("garbage", _constant("garbage")),
    Forgery("three garbage segments", _constant("a.b.c")),
    Forgery("empty segments", _constant("..")),
    Forgery("empty JSON objects", _constant("e30.e30.e30")),
    Forgery("about 1 MB of dots", _constant("." * 1_000_000)),
]


# -- opaque refresh tokens -----------------------------------------------------------------

OpaqueForge = Callable[[str], str]

OPAQUE_FORGERIES: dict[str, OpaqueForge] = {
    "one character changed": lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),
    "truncated": lambda token: token[:-1],
    "doubled": lambda token: token + token,
    "upper-cased": lambda token: token.upper(),
    "padding = appended": lambda token: token + "=",
    "space inside": lambda token: token[:20] + " " + token[20:],
    "NUL appended": lambda token: token + "\x00",
    "non-ASCII appended": lambda token: token + "\u00e9\u4e2d",
    "lone surrogate appended": lambda token: token + "\ud800",
    "its stored digest": lambda token: hashlib.sha256(token.encode()).hexdigest(),
    "over 8 KB": lambda token: token * (8300 // len(token) + 1),
    "about 1 MB": lambda token: "r" * 1_000_000,
    "JWT-shaped": lambda token: f"{b64url(b'{}')}.{token}.{b64url(b'sig')}",
    "base64 of 'not json'": lambda token: b64url(b"not json"),
    "a UUID": lambda token: str(uuid.uuid4()),
}
