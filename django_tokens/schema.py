"""drf-spectacular extensions: how this app's authentication appears in OpenAPI schemas, and a
postprocessing hook that documents the OAuth 2.0 endpoints.

Imported by :meth:`django_tokens.apps.DjangoTokensConfig.ready`, which registers them.
"""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse
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


# -- the OAuth 2.0 endpoints -----------------------------------------------------------------
#
# django-oauth-toolkit's views are Django views, not DRF views, so drf-spectacular does not see
# them. :func:`oauth2_operations`, a drf-spectacular postprocessing hook, documents them.


def _string(description: str = "") -> dict[str, Any]:
    return {"type": "string", "description": description} if description else {"type": "string"}


def _object(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, **extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_OAUTH2_COMPONENTS: dict[str, Any] = {
    "OAuth2Error": _object(
        {
            "error": _string("RFC 6749 §5.2 error code."),
            "error_description": _string(),
            "meta": _object(
                {
                    "pagination": _object(
                        {
                            "limit": {"type": "integer"},
                            "offset": {"type": "integer"},
                            "total_count": {"type": "integer"},
                        },
                        ["limit", "offset", "total_count"],
                    )
                },
                ["pagination"],
            ),
            "errors": {
                "type": "array",
                "items": _object(
                    {"httpcode": {"type": "integer"}, "message": _string()},
                    ["httpcode", "message"],
                ),
            },
        },
        ["error", "error_description", "meta", "errors"],
        description="RFC 6749's error fields and seed 002's envelope, side by side.",
    ),
    "OAuth2Token": _object(
        {
            "access_token": _string("An RFC 9068 JWT signed by the keystore."),
            "expires_in": {"type": "integer"},
            "token_type": {"type": "string", "enum": ["bearer"]},
            "scope": _string(),
            "refresh_token": _string("authorization_code and refresh_token grants."),
            "id_token": _string("When `openid` was granted."),
        },
        ["access_token", "expires_in", "token_type", "scope"],
    ),
    "OAuth2TokenRequest": _object(
        {
            "grant_type": {
                "type": "string",
                "enum": ["authorization_code", "client_credentials", "refresh_token"],
            },
            "scope": _string("Space-separated scopes."),
            "code": _string("authorization_code."),
            "redirect_uri": _string("authorization_code."),
            "code_verifier": _string("authorization_code: the PKCE verifier (RFC 7636)."),
            "refresh_token": _string("refresh_token."),
            "client_id": _string("Client authentication in the form, instead of HTTP Basic."),
            "client_secret": _string(),
        },
        ["grant_type"],
    ),
    "OAuth2RevocationRequest": _object(
        {
            "token": _string(),
            "token_type_hint": {"type": "string", "enum": ["access_token", "refresh_token"]},
            "client_id": _string(),
            "client_secret": _string(),
        },
        ["token"],
    ),
    "OAuth2IntrospectionRequest": _object(
        {
            "token": _string(),
            "token_type_hint": _string(),
            "client_id": _string(),
            "client_secret": _string(),
        },
        ["token"],
    ),
    "OAuth2Introspection": _object(
        {
            "active": {"type": "boolean"},
            "token_type": _string(),
            "scope": _string(),
            "client_id": _string(),
            "sub": _string(),
            "aud": {"oneOf": [_string(), {"type": "array", "items": _string()}]},
            "iss": _string(),
            "exp": {"type": "integer"},
            "iat": {"type": "integer"},
            "jti": _string(),
            "sid": _string(),
            "username": _string(),
        },
        ["active"],
        description='RFC 7662 §2.2; `{"active": false}` for anything not live.',
    ),
    "UserInfo": _object(
        {
            "sub": _string(),
            "email": _string(),
            "email_verified": {"type": "boolean"},
            "name": _string(),
            "preferred_username": _string(),
        },
        ["sub"],
        description="OIDC Core §5.3: the claims the access token's scopes grant.",
    ),
    "AuthorizationServerMetadata": _object(
        {
            "issuer": _string(),
            "authorization_endpoint": _string(),
            "token_endpoint": _string(),
            "revocation_endpoint": _string(),
            "introspection_endpoint": _string(),
            "userinfo_endpoint": _string(),
            "jwks_uri": _string(),
            "scopes_supported": {"type": "array", "items": _string()},
            "response_types_supported": {"type": "array", "items": _string()},
            "grant_types_supported": {"type": "array", "items": _string()},
            "code_challenge_methods_supported": {"type": "array", "items": _string()},
        },
        ["issuer", "token_endpoint", "jwks_uri", "response_types_supported"],
        description="RFC 8414 (and OpenID Connect Discovery 1.0).",
    ),
}


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema_name)}},
    }


def _oauth2_error(description: str, challenge: str | None = None) -> dict[str, Any]:
    response = _json("OAuth2Error", description)
    if challenge is not None:
        response["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": challenge}
        }
    return response


def _form(schema_name: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": _ref(schema_name)}},
    }


_CLIENT_AUTH: list[dict[str, list[str]]] = [{"basicAuth": []}, {}]
_INVALID_CLIENT = _oauth2_error("invalid_client", '`Basic realm="oauth2"`')


def _oauth2_paths() -> dict[str, dict[str, Any]]:
    token = {
        "post": {
            "operationId": "oauth2_token",
            "summary": "Obtain an access token (RFC 6749)",
            "tags": ["oauth2"],
            "requestBody": _form("OAuth2TokenRequest"),
            "security": _CLIENT_AUTH,
            "responses": {
                "200": _json("OAuth2Token", "Tokens"),
                "400": _oauth2_error(
                    "invalid_request, invalid_grant, unsupported_grant_type, invalid_scope"
                ),
                "401": _INVALID_CLIENT,
                "403": _oauth2_error("unauthorized_client, access_denied"),
            },
        }
    }
    revoke = {
        "post": {
            "operationId": "oauth2_revoke",
            "summary": "Revoke an access or refresh token (RFC 7009)",
            "tags": ["oauth2"],
            "requestBody": _form("OAuth2RevocationRequest"),
            "security": _CLIENT_AUTH,
            "responses": {
                "200": {"description": "Revoked, or unknown: the body is empty"},
                "400": _oauth2_error("invalid_request, unsupported_token_type"),
                "401": _INVALID_CLIENT,
            },
        }
    }
    introspect = {
        "post": {
            "operationId": "oauth2_introspect",
            "summary": "Describe a token (RFC 7662)",
            "tags": ["oauth2"],
            "requestBody": _form("OAuth2IntrospectionRequest"),
            "security": [{"basicAuth": []}, {"bearerAuth": []}, {}],
            "responses": {
                "200": _json("OAuth2Introspection", "The token's description"),
                "400": _oauth2_error("invalid_request"),
                "401": _INVALID_CLIENT,
            },
        }
    }
    userinfo_responses = {
        "200": _json("UserInfo", "The claims"),
        "401": _oauth2_error("invalid_token", '`Bearer error="invalid_token"`'),
        "403": _oauth2_error("insufficient_scope", '`Bearer error="insufficient_scope"`'),
    }
    userinfo = {
        method: {
            "operationId": f"oauth2_userinfo_{method}",
            "summary": "The user's claims (OpenID Connect Core §5.3)",
            "tags": ["oauth2"],
            "security": [{"bearerAuth": []}],
            "responses": userinfo_responses,
        }
        for method in ("get", "post")
    }

    def metadata(operation_id: str, summary: str) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation_id,
                "summary": summary,
                "tags": ["oauth2"],
                "security": [],
                "responses": {"200": _json("AuthorizationServerMetadata", "The metadata")},
            }
        }

    return {
        "django_tokens:oauth2-token": token,
        "django_tokens:oauth2-revoke": revoke,
        "django_tokens:oauth2-introspect": introspect,
        "django_tokens:oauth2-userinfo": userinfo,
        "django_tokens:openid-configuration": metadata(
            "openid_configuration", "OpenID Provider metadata (OpenID Connect Discovery 1.0)"
        ),
        "django_tokens:oauth-authorization-server": metadata(
            "oauth_authorization_server", "Authorization server metadata (RFC 8414)"
        ),
    }


def oauth2_operations(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: documents the OAuth 2.0 endpoints (token,
    revocation, introspection, userinfo, discovery) where ``django_tokens.urls`` is mounted.

    Add it after drf-spectacular's default hook::

        SPECTACULAR_SETTINGS = {
            "POSTPROCESSING_HOOKS": [
                "drf_spectacular.hooks.postprocess_schema_enums",
                "django_tokens.schema.oauth2_operations",
            ],
        }
    """
    paths = dict(result.get("paths", {}))
    for name, item in _oauth2_paths().items():
        try:
            path = reverse(name)
        except NoReverseMatch:
            continue
        paths[path] = item
    result["paths"] = dict(sorted(paths.items()))
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(_OAUTH2_COMPONENTS)
    schemes = components.setdefault("securitySchemes", {})
    schemes.setdefault("basicAuth", {"type": "http", "scheme": "basic"})
    schemes.setdefault(
        "bearerAuth", build_bearer_security_scheme_object("Authorization", "Bearer", "JWT")
    )
    return result
