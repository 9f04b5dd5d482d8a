"""The example project's URLs plus the benchmark's floor view and a verify view whose body is
the same as the peers' verify views (``/api/me`` answers more and checks a scope)."""

from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from benchmarks.bench_common import FloorView, identity
from django_tokens.authentication import JWTAuthentication
from example_project.urls import urlpatterns as example_urlpatterns


class OursVerifyView(APIView):
    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return identity(request)


urlpatterns = [
    path("bench/floor", FloorView.as_view()),
    path("bench/verify", OursVerifyView.as_view()),
    *example_urlpatterns,
]
