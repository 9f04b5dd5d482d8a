"""Token results rendered in each service's wire format (the seeds' JSON shapes)."""

from __future__ import annotations

from typing import Any

from django_tokens.services.password import TokenResult


def password_token_body(result: TokenResult) -> dict[str, Any]:
    """Seed 001: exactly these four keys."""
    return {
        "token_type": "bearer",
        "expires_in": result.expires_in,
        "access_token": result.access_token,
        "refresh_token": result.refresh_token,
    }
