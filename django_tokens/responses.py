"""Token results rendered in each service's wire format (the seeds' JSON shapes)."""

from __future__ import annotations

from typing import Any

from django_tokens.services.api_key import KeycloakResult
from django_tokens.services.password import TokenResult


def password_token_body(result: TokenResult) -> dict[str, Any]:
    """Seed 001: exactly these four keys."""
    return {
        "token_type": "bearer",
        "expires_in": result.expires_in,
        "access_token": result.access_token,
        "refresh_token": result.refresh_token,
    }


def keycloak_token_body(result: KeycloakResult) -> dict[str, Any]:
    """Seed 000 (Keycloak's token response): exactly these nine keys."""
    return {
        "access_token": result.access_token,
        "expires_in": result.expires_in,
        "refresh_expires_in": result.refresh_expires_in,
        "refresh_token": result.refresh_token,
        "token_type": "bearer",
        "id_token": result.id_token,
        "not-before-policy": 0,
        "session_state": result.session_state,
        "scope": result.scope,
    }
