"""drf-spectacular extensions: how this app's authentication appears in OpenAPI schemas.

Imported by :meth:`django_tokens.apps.DjangoTokensConfig.ready`, which registers them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer <access token>``, for views using ``JWTAuthentication``."""

    target_class = "django_tokens.authentication.JWTAuthentication"
    match_subclasses = True
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Bearer", bearer_format="JWT"
        )
