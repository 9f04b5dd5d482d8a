"""Wire shapes the seeds fix, shared by the test modules that check them."""

#: Seed 000 (Keycloak's token response): exactly these keys.
KEYCLOAK_KEYS = frozenset(
    {
        "access_token",
        "expires_in",
        "refresh_expires_in",
        "refresh_token",
        "token_type",
        "id_token",
        "not-before-policy",
        "session_state",
        "scope",
    }
)
