from django.urls import include, path
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from benchmarks.bench_common import FloorView
from benchmarks.peers.views import DOTVerifyView, SimpleJWTVerifyView, StatelessVerifyView

urlpatterns = [
    path("bench/floor", FloorView.as_view()),
    path("bench/verify/simplejwt", SimpleJWTVerifyView.as_view()),
    path("bench/verify/stateless", StatelessVerifyView.as_view()),
    path("bench/verify/dot", DOTVerifyView.as_view()),
    # simplejwt's "Getting started" and DOT's tutorial, verbatim.
    path("api/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
