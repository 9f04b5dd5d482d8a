from typing import Any

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

    def get(self, request: Request) -> Response:
        user: Any = request.user
        body: dict[str, Any] = {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "scope": sorted(request.auth.scopes),  # type: ignore[union-attr]
            "session": request.auth["sid"],  # type: ignore[index]
        }
        if request.query_params.get("fields") == "full":
            body["date_joined"] = user.date_joined.isoformat()
        return Response(body)
