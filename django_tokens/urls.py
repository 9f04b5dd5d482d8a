"""Mount with ``path("", include("django_tokens.urls"))``. Paths take an optional trailing slash.

The slash is written ``(?:/)?`` rather than ``/?`` so that schema generators, which simplify
regexes with Django's ``simplify_regex``, document each path without it (``/api/token``).
"""

from django.urls import re_path

from django_tokens import oauth2_views, views

app_name = "django_tokens"

urlpatterns = [
    re_path(r"^api/token(?:/)?$", views.PasswordTokenView.as_view(), name="password-token"),
    re_path(
        r"^api/token/refresh(?:/)?$", views.PasswordRefreshView.as_view(), name="password-refresh"
    ),
    re_path(
        r"^api/token/logout(?:/)?$", views.PasswordLogoutView.as_view(), name="password-logout"
    ),
    re_path(r"^\.well-known/jwks\.json(?:/)?$", views.JWKSView.as_view(), name="jwks"),
    re_path(r"^auth/api-key(?:/)?$", views.ApiKeyTokenView.as_view(), name="api-key-token"),
    re_path(r"^auth/login(?:/)?$", views.LoginView.as_view(), name="login"),
    re_path(r"^auth/refresh(?:/)?$", views.ApiKeyRefreshView.as_view(), name="api-key-refresh"),
    re_path(r"^auth/logout(?:/)?$", views.ApiKeyLogoutView.as_view(), name="api-key-logout"),
    re_path(r"^oauth2/token(?:/)?$", oauth2_views.TokenView.as_view(), name="oauth2-token"),
    re_path(
        r"^oauth2/authorize(?:/)?$",
        oauth2_views.AuthorizationView.as_view(),
        name="oauth2-authorize",
    ),
    re_path(r"^oauth2/login(?:/)?$", oauth2_views.OAuth2LoginView.as_view(), name="oauth2-login"),
    re_path(r"^oauth2/revoke(?:/)?$", oauth2_views.RevokeTokenView.as_view(), name="oauth2-revoke"),
    re_path(
        r"^oauth2/introspect(?:/)?$",
        oauth2_views.IntrospectTokenView.as_view(),
        name="oauth2-introspect",
    ),
    re_path(
        r"^oauth2/userinfo(?:/)?$", oauth2_views.UserInfoView.as_view(), name="oauth2-userinfo"
    ),
    re_path(
        r"^\.well-known/openid-configuration(?:/)?$",
        oauth2_views.OpenIDConfigurationView.as_view(),
        name="openid-configuration",
    ),
    re_path(
        r"^\.well-known/oauth-authorization-server(?:/)?$",
        oauth2_views.AuthorizationServerMetadataView.as_view(),
        name="oauth-authorization-server",
    ),
    re_path(r"^oauth2/.+$", views.not_found),
    re_path(r"^api/token/.+$", views.not_found),
    re_path(r"^auth/.*$", views.not_found),
]
