"""The example's claims hook: the claims of seed 001's token, from the user and their profile."""

from typing import Any

from example_project.demo.models import CustomerProfile


def seed_claims(user: Any, *, service: str, scopes: list[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "name": user.get_full_name() or user.get_username(),
        "email": user.email,
    }
    try:
        profile = user.customer_profile
    except CustomerProfile.DoesNotExist:
        return claims
    claims.update(
        phone=profile.phone,
        client=profile.client,
        parent=profile.parent,
        level=profile.level,
        utype=profile.utype,
        cust_id=profile.cust_id,
    )
    return claims
