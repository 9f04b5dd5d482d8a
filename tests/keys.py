"""Fixed key material for the tests."""

#: Fernet keys (32 random bytes, base64url), used as ENCRYPTION_KEYS in rotation tests.
FERNET_KEY_OLD = "adlrKLh8swjRWgscXcB6udINw19BSAtbmQnVFqkF7h4="
FERNET_KEY_NEW = "BF0BrmmizCzo0gZosnx31ysK6P8l8-IiA_4hZhBfF7s="
#: A key that is never configured: ciphertexts under it cannot be decrypted.
FERNET_KEY_FOREIGN = "amNs-lDFMxDGl_RrQ5xXwq7HVU_iXcina06_Qi9KJuA="

#: A high-entropy string that is not a Fernet key: the secret box derives one with HKDF.
PASSPHRASE_KEY = "not a fernet key, but long enough and random: 7f3c9a1e5d2b8046"

#: RFC 7638 §3.1: the example RSA public key and its SHA-256 JWK thumbprint.
RFC7638_RSA_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
        "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhA"
        "I4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_RSA_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

#: RFC 8037 Appendix A.3: an Ed25519 public key and its SHA-256 JWK thumbprint.
RFC8037_OKP_JWK = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_OKP_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
