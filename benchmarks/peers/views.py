"""The peers' protected views: the same body as ours' ``/bench/verify``, one authentication
class each, ``IsAuthenticated`` as the permission."""

from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import (
    JWTAuthentication,
    JWTStatelessUserAuthentication,
)

from benchmarks.bench_common import identity


class SimpleJWTVerifyView(APIView):
    """simplejwt's default class: verifies the token, then loads the user row."""

    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return identity(request)


class StatelessVerifyView(APIView):
    """simplejwt's stateless class: a ``TokenUser`` from the claims, no query."""

    authentication_classes = [JWTStatelessUserAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return identity(request)


class DOTVerifyView(APIView):
    """DOT's DRF class: looks the opaque token up in its table."""

    authentication_classes = [OAuth2Authentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return identity(request)
