from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_tokens.authentication import HasScope, JWTAuthentication


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
        responses=inline_serializer(
            "Me",
            {
                "id": serializers.IntegerField(),
                "username": serializers.CharField(),
                "email": serializers.CharField(),
                "scope": serializers.ListField(child=serializers.CharField()),
                "session": serializers.CharField(allow_null=True),
                "client_id": serializers.CharField(required=False),
                "date_joined": serializers.DateTimeField(required=False),
            },
        ),
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
