"""django-oauth-toolkit's application admin, with client secrets shown once.

DOT's own admin puts a new application's secret in the add form, before anything is saved,
and takes a new one typed into the change form. Here the secret is generated when the
application is saved and shown on the page that answers (``Cache-Control: no-store``), and a
"New client secret" object action replaces it the same way; no form holds a secret. Wired by
:func:`django_tokens.oauth2_config.provider_settings` (DOT's ``APPLICATION_ADMIN_CLASS``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy as _
from oauth2_provider.admin import ApplicationAdmin as DOTApplicationAdmin
from oauth2_provider.generators import generate_client_secret

from django_tokens import audit
from django_tokens.admin import _PagesMixin, audited


class _ShownOnce(str):
    """A secret for the page that shows it: rendered as itself, but its ``repr`` — what
    Django's template debug log (a variable missing from the page's context) and error
    reports print — does not carry it."""

    def __repr__(self) -> str:
        return "'<secret>'"


class ApplicationAdmin(_PagesMixin, DOTApplicationAdmin):
    change_form_template = "admin/django_tokens/application/change_form.html"

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*(super().get_exclude(request, obj) or ()), "client_secret")

    def get_urls(self) -> list[Any]:
        return [self._object_url("new-secret", self.new_secret_view), *super().get_urls()]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        secret = generate_client_secret()
        obj.client_secret = secret  # hashed by DOT's field as it is saved
        super().save_model(request, obj, form, change)
        obj._django_tokens_new_secret = secret
        _record_secret(obj, "created")

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(obj, "_django_tokens_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return self._secret_page(request, obj, secret, _("Application added"))

    def _secret_page(
        self, request: HttpRequest, application: Any, secret: str, title: Any
    ) -> TemplateResponse:
        response = self._page(
            request,
            "application/secret.html",
            title=title,
            application=application,
            client_secret=_ShownOnce(secret),
            public=application.client_type == application.CLIENT_PUBLIC,
        )
        add_never_cache_headers(response)  # no-store, private: the secret is in this page only
        return response

    @audited
    def new_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Replace the client secret, after a confirmation: the old one stops at once."""
        application = self.get_object(request, unquote(object_id))
        if application is None:
            raise Http404
        if not self.has_change_permission(request, application):
            raise PermissionDenied
        if request.method == "POST" and request.POST.get("post"):
            secret = generate_client_secret()
            application.client_secret = secret
            application.save(update_fields=["client_secret", "updated"])
            _record_secret(application, "replaced")
            self.log_change(request, application, "Replaced the client secret.")
            return self._secret_page(request, application, secret, _("New client secret"))
        if request.method == "POST":
            self.message_user(request, _("Nothing was changed."), messages.INFO)
            return HttpResponseRedirect(self._url("change", application.pk))
        return self._confirm_page(
            request,
            title=_("New client secret"),
            question=_(
                "Give this application a new client secret? The current one stops working at "
                "once: update the client's configuration with the new one."
            ),
            items=[f"{application.name or application.client_id} ({application.client_id})"],
            form_action=request.path,
            cancel_url=self._url("change", application.pk),
            confirm_label=_("Replace the secret"),
        )


def _record_secret(application: Any, how: str) -> None:
    audit.record(
        audit.Action.CLIENT_SECRET_ISSUED,
        user=application.user,
        client_id=application.client_id,
        actor="",
        detail={"secret": how},
    )
