from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from example_project.demo.views import MeView, frontend, oauth2_callback

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^api/me(?:/)?$", MeView.as_view(), name="me"),
    re_path(r"^demo/callback(?:/)?$", oauth2_callback, name="demo-callback"),
    re_path(r"^demo/(?P<name>demo\.js|demo\.css)?$", frontend, name="demo-frontend"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    path("", include("django_tokens.urls")),
]
