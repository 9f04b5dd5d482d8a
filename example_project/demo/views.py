from pathlib import Path
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_tokens.authentication import HasScope, JWTAuthentication

#: DRF's error body, as its authentication and permission classes answer.
_API_ERROR = inline_serializer(
    "ApiError",
    {"detail": serializers.CharField(), "code": serializers.CharField(required=False)},
)


class MeView(APIView):
    """``GET /api/me``: who the access token belongs to, answered from its claims.

    ``?fields=full`` also reads ``date_joined``, which the token does not carry: only then is
    the user row loaded.
    """

    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated, HasScope]
    required_scopes = ["profile"]

    @extend_schema(
        operation_id="me",
        summary="The user and session of the presented access token",
        parameters=[
            OpenApiParameter("fields", str, enum=["full"], description="`full` adds `date_joined`.")
        ],
        responses={
            # A user's token answers the user's fields; a client's own token (client
            # credentials) only ``client_id`` and ``scope``.
            200: inline_serializer(
                "Me",
                {
                    "id": serializers.IntegerField(required=False),
                    "username": serializers.CharField(required=False),
                    "email": serializers.CharField(required=False),
                    "scope": serializers.ListField(child=serializers.CharField()),
                    "session": serializers.CharField(allow_null=True, required=False),
                    "client_id": serializers.CharField(required=False),
                    "date_joined": serializers.DateTimeField(required=False),
                },
            ),
            401: OpenApiResponse(_API_ERROR, description="Missing, invalid or revoked token"),
            403: OpenApiResponse(_API_ERROR, description="The token lacks the `profile` scope"),
        },
    )
    def get(self, request: Request) -> Response:
        user: Any = request.user
        if user.is_client:  # an OAuth client acting for itself (client_credentials)
            return Response(
                {"client_id": user.username, "scope": sorted(request.auth.scopes)}  # type: ignore[union-attr]
            )
        body: dict[str, Any] = {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "scope": sorted(request.auth.scopes),  # type: ignore[union-attr]
            # The session of password and API-key tokens; OAuth 2.0 tokens name their client.
            "session": request.auth.get("sid"),  # type: ignore[union-attr]
        }
        if "client_id" in request.auth:  # type: ignore[operator]
            body["client_id"] = request.auth["client_id"]  # type: ignore[index]
        if request.query_params.get("fields") == "full":
            body["date_joined"] = user.date_joined.isoformat()
        return Response(body)


def oauth2_callback(request: HttpRequest) -> HttpResponse:
    """The redirect URI of the demo public client: shows the code and how to exchange it."""
    params = request.GET
    response = render(
        request,
        "demo/callback.html",
        {
            "code": params.get("code", ""),
            "state": params.get("state", ""),
            "error": params.get("error", ""),
            "error_description": params.get("error_description", ""),
            "client_id": DEMO_PUBLIC_CLIENT_ID,
            "redirect_uri": request.build_absolute_uri(request.path),
            "token_url": request.build_absolute_uri(reverse("django_tokens:oauth2-token")),
        },
    )
    add_never_cache_headers(response)
    return response


DEMO_PUBLIC_CLIENT_ID = "demo-spa"


#: The demo front end: one static page, served here at /demo/ or from any other origin.
FRONTEND_DIR = Path(__file__).resolve().parent / "frontend"
_FRONTEND_FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "demo.js": ("demo.js", "text/javascript; charset=utf-8"),
    "demo.css": ("demo.css", "text/css; charset=utf-8"),
}


def frontend(request: HttpRequest, name: str = "") -> HttpResponse:
    """``GET /demo/``: the demo front end. Its policy allows no inline script, and no
    connection but to this origin: the page calls the API it is served by."""
    filename, content_type = _FRONTEND_FILES[name or ""]
    response = FileResponse((FRONTEND_DIR / filename).open("rb"), content_type=content_type)
    response["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    response["Cache-Control"] = "no-cache"
    return response  # type: ignore[return-value]
