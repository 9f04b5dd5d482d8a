"""Admin screens: the keystore and sessions read-only with revocation as an action; API keys
issued, rotated and revoked.

Nothing secret is shown but a new API-key secret, once, on the page that answers its issue or
rotation. Private keys and refresh-token digests are never displayed.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Max, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_tokens import api_keys, audit, keystore, receivers, sessions
from django_tokens.conf import SIGNING_ALGORITHMS, token_settings
from django_tokens.models import ApiKey, AuditEvent, Session, SigningKey, UserMetadata

View = TypeVar("View", bound=Callable[..., HttpResponse])


def audited(view: View) -> View:
    """An admin view whose changes the audit trail attributes to the signed-in staff user,
    at the request's address."""

    @wraps(view)
    def wrapper(self: Any, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with audit.request_context(request):
            return view(self, request, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _PagesMixin:
    """Intermediate pages (confirmation, results) in the admin's look, for object views and
    bulk actions alike. A bulk action's confirmation posts the selection back with
    ``post=yes``, as Django's own "delete selected" does. Changes made from the change list
    (actions) and change forms are attributed to the staff user in the audit trail."""

    admin_site: Any
    opts: Any

    @audited
    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    @audited
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        return super().changeform_view(  # type: ignore[misc]
            request, object_id, form_url, extra_context
        )

    def _object_url(self, name: str, view: Callable[..., HttpResponse]) -> Any:
        """``<object_id>/<name>/``: an object view, wrapped as the admin wraps its own."""
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return path(
            f"<path:object_id>/{name}/", self.admin_site.admin_view(view), name=f"{prefix}_{name}"
        )

    def _page(self, request: HttpRequest, template: str, **context: Any) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/django_tokens/{template}",
            {**self.admin_site.each_context(request), "opts": self.opts, **context},
        )

    def _url(self, name: str, *args: Any) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=args)

    def _confirm_page(self, request: HttpRequest, **context: Any) -> TemplateResponse:
        defaults: dict[str, Any] = {
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": self._url("changelist"),
            "form_action": "",
            "action": "",
            "form": None,
            "items": [],
            "selected": [],
        }
        return self._page(request, "confirm.html", **{**defaults, **context})


class StateListFilter(admin.SimpleListFilter):
    """Live, expired or revoked: the state column of sessions and API keys, as a filter."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("live", _("live")), ("expired", _("expired")), ("revoked", _("revoked"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        return queryset


class RotateSigningKeyForm(forms.Form):
    algorithm = forms.ChoiceField(
        label=_("Algorithm"),
        choices=[(name, name) for name in SIGNING_ALGORITHMS],
        help_text=_(
            "The next key's algorithm promotes the pre-published key; another one activates a "
            "new key at once."
        ),
    )


class RetireSigningKeyForm(forms.Form):
    force = forms.BooleanField(
        label=_("Retire it anyway"),
        required=True,
        help_text=_("Tokens it signed that are still valid stop working at once."),
    )


@admin.register(SigningKey)
class SigningKeyAdmin(_PagesMixin, admin.ModelAdmin):
    list_display = ("kid", "algorithm", "state", "created_at", "activated_at", "retire_after")
    list_filter = ("state", "algorithm")
    search_fields = ("kid",)
    fields = (
        "kid",
        "algorithm",
        "state",
        "public_jwk",
        "created_at",
        "activated_at",
        "retiring_at",
        "retire_after",
        "retired_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a deleted key breaks every token it signed: rotate instead

    change_list_template = "admin/django_tokens/signingkey/change_list.html"
    change_form_template = "admin/django_tokens/signingkey/change_form.html"

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        """Rotating needs the model's change permission (granted in the admin as usual)."""
        codename = f"change_{self.opts.model_name}"
        return bool(request.user.has_perm(f"{self.opts.app_label}.{codename}"))

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {
            **(extra_context or {}),
            "has_rotate_permission": self.has_rotate_permission(request),
        }
        return super().changelist_view(request, extra)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra = {
            **(extra_context or {}),
            "has_rotate_permission": self.has_rotate_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self) -> list[Any]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("rotate/", self.admin_site.admin_view(self.rotate_view), name=f"{prefix}_rotate"),
            self._object_url("retire", self.retire_view),
            *super().get_urls(),
        ]

    @audited
    def retire_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Retire a retiring key before its tokens expire, after a confirmation that says
        what would break; while valid tokens need it, only with the force box ticked."""
        if not self.has_rotate_permission(request):
            raise PermissionDenied
        key = self.get_object(request, unquote(object_id))
        if key is None:
            raise Http404
        if key.state != SigningKey.State.RETIRING:
            self.message_user(
                request,
                _("Only a retiring key can be retired: rotate the keys first."),
                messages.ERROR,
            )
            return HttpResponseRedirect(self._url("change", key.pk))
        impact = keystore.retirement_impact(key)
        needs_force = not impact.breaks_nothing
        form = RetireSigningKeyForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and (not needs_force or form.is_valid()):
            try:
                done = keystore.retire(key.kid, force=needs_force)
            except keystore.KeyStillNeeded as exc:
                impact, needs_force = exc.impact, True  # more tokens since the page
                form = RetireSigningKeyForm()
            except keystore.KeystoreError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(self._url("change", key.pk))
            else:
                self.log_change(
                    request,
                    key,
                    "Retired" + (" by force: " + done.describe() if needs_force else "."),
                )
                self.message_user(
                    request, _("Retired %(kid)s.") % {"kid": key.kid}, messages.SUCCESS
                )
                return HttpResponseRedirect(self._url("changelist"))
        return self._confirm_page(
            request,
            title=_("Retire signing key"),
            question=_("Retire this key? It leaves the JWKS and verifies nothing more. %(impact)s")
            % {"impact": impact.describe()},
            items=[str(key)],
            form=form if needs_force else None,
            form_action=request.path,
            cancel_url=self._url("change", key.pk),
            confirm_label=_("Retire by force") if needs_force else _("Retire"),
        )

    @audited
    def rotate_view(self, request: HttpRequest) -> HttpResponse:
        """``rotate_signing_key`` from the admin, after a confirmation."""
        if not self.has_rotate_permission(request):
            raise PermissionDenied
        form = RotateSigningKeyForm(
            request.POST if request.method == "POST" else None,
            initial={"algorithm": token_settings.SIGNING_ALGORITHM},
        )
        if request.method == "POST" and form.is_valid():
            rotation = keystore.rotate(form.cleaned_data["algorithm"])
            self.log_change(request, rotation.active, "Rotated: this key is now active.")
            self.message_user(
                request,
                _("Rotated. Active key: %(active)s; next key: %(next)s.")
                % {"active": rotation.active.kid, "next": rotation.next.kid},
                messages.SUCCESS,
            )
            return HttpResponseRedirect(self._url("changelist"))
        return self._confirm_page(
            request,
            title=_("Rotate the signing key"),
            question=_(
                "Promote the next key to active? New tokens are signed with it at once; the "
                "current key stays published until every token it signed has expired."
            ),
            form=form,
            form_action=request.path,
            confirm_label=_("Rotate now"),
        )


@admin.register(Session)
class SessionAdmin(_PagesMixin, admin.ModelAdmin):
    """Sessions (refresh-token families) of the password and API-key services, per user and
    key. Revoking one stops its refreshes at once and marks it, so that JWTAuthentication
    refuses its access tokens. (OAuth 2.0 grants are DOT's refresh tokens, in its admin.)"""

    list_display = (
        "id",
        "user",
        "service",
        "api_key",
        "scope",
        "created_at",
        "last_refresh",
        "expires_at",
        "state",
    )
    list_filter = (StateListFilter, "service", "created_at")
    search_fields = ("id", "user__username", "user__email", "api_key__key_id")
    list_select_related = ("user", "api_key")
    readonly_fields = (
        "id",
        "user",
        "service",
        "api_key",
        "scope",
        "created_at",
        "expires_at",
        "revoked_at",
        "revoke_reason",
    )
    actions = ["revoke_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        return (
            super().get_queryset(request).annotate(_last_refresh=Max("refresh_tokens__created_at"))
        )

    @admin.display(description=_("last refresh"), ordering="_last_refresh")
    def last_refresh(self, obj: Session) -> Any:
        return getattr(obj, "_last_refresh", None)

    @admin.display(description=_("state"))
    def state(self, obj: Session) -> str:
        if obj.revoked_at is not None:
            return str(_("revoked"))
        if obj.expires_at <= timezone.now():
            return str(_("expired"))
        return str(_("live"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead; purge_tokens removes what has expired

    @admin.action(description=_("Revoke selected sessions"), permissions=["change"])
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[Session]
    ) -> HttpResponse | None:
        live = list(queryset.filter(revoked_at__isnull=True).select_related("user"))
        if not request.POST.get("post"):
            return self._confirm_page(
                request,
                title=_("Revoke sessions"),
                question=_(
                    "Revoke these sessions? Their refresh tokens stop at once and their access "
                    "tokens are refused."
                ),
                items=[f"{session.pk} — {session.user} ({session.service})" for session in live],
                selected=[session.pk for session in live],
                action="revoke_selected",
                confirm_label=_("Yes, revoke"),
            )
        count = sessions.revoke_sessions(
            Session.objects.filter(pk__in=[session.pk for session in live]), reason="admin"
        )
        for session in live:
            self.log_change(request, session, "Revoked the session.")
        self.message_user(
            request,
            ngettext("%d session revoked.", "%d sessions revoked.", count) % count,
            messages.SUCCESS,
        )
        return None


def _key_items(keys: list[ApiKey]) -> list[str]:
    return [f"{key.key_id} — {key.name} ({key.owner})" for key in keys]


class ApiKeyIssueForm(forms.Form):
    owner = forms.CharField(
        label=_("Owner"), max_length=150, help_text=_("The username of the key's owner.")
    )
    name = forms.CharField(label=_("Name"), max_length=ApiKey._meta.get_field("name").max_length)
    scopes = forms.CharField(
        label=_("Scopes"), max_length=512, help_text=_("Space-separated, e.g. “openid email”.")
    )
    expires_in_days = forms.IntegerField(
        label=_("Expires in (days)"),
        required=False,
        min_value=1,
        max_value=36500,
        help_text=_("Empty: the key does not expire."),
    )

    def clean_owner(self) -> Any:
        users = get_user_model()
        username = self.cleaned_data["owner"]
        try:
            return users._default_manager.get_by_natural_key(username)
        except users.DoesNotExist:
            raise forms.ValidationError(_("No user has that username.")) from None

    def clean_scopes(self) -> list[str]:
        scopes = self.cleaned_data["scopes"].split()
        if not scopes:
            raise forms.ValidationError(_("Name at least one scope."))
        return scopes


class RotateSecretForm(forms.Form):
    grace_seconds = forms.IntegerField(
        label=_("Grace period (seconds)"),
        min_value=0,
        max_value=30 * 24 * 3600,
        initial=0,
        help_text=_("How long the current secret keeps working beside the new one."),
    )


@admin.register(ApiKey)
class ApiKeyAdmin(_PagesMixin, admin.ModelAdmin):
    """Issue, rotate and revoke API keys (:mod:`django_tokens.api_keys`, the same code as the
    management commands). A secret appears once, on the page that answers the issue or
    rotation (``Cache-Control: no-store``), and nowhere else: not in a list, a message, the
    session, a log line or a URL."""

    change_form_template = "admin/django_tokens/apikey/change_form.html"
    list_display = (
        "name",
        "key_id",
        "owner",
        "scope",
        "created_at",
        "last_used_at",
        "expires_at",
        "state",
    )
    list_filter = (StateListFilter, "expires_at")
    search_fields = ("key_id", "name", "owner__username", "owner__email")
    list_select_related = ("owner",)
    fields = (
        "name",
        "key_id",
        "owner",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "previous_secret_expires_at",
        "revoked_at",
    )
    readonly_fields = (
        "key_id",
        "owner",
        "created_at",
        "last_used_at",
        "previous_secret_expires_at",
        "revoked_at",
    )
    actions = ["revoke_selected", "rotate_selected"]

    @admin.display(description=_("state"))
    def state(self, obj: ApiKey) -> str:
        if obj.revoked_at is not None:
            return str(_("revoked"))
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return str(_("expired"))
        return str(_("live"))

    def get_urls(self) -> list[Any]:
        return [
            self._object_url("rotate", self.rotate_view),
            self._object_url("revoke", self.revoke_view),
            *super().get_urls(),
        ]

    # -- pages -------------------------------------------------------------------------------

    def _secrets_page(
        self, request: HttpRequest, issued: list[api_keys.IssuedSecret], title: Any
    ) -> TemplateResponse:
        response = self._page(request, "apikey/secret.html", title=title, issued_secrets=issued)
        add_never_cache_headers(response)  # no-store, private: the secret is in this page only
        return response

    @audited
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """Issue a key for a user: the answer is the page that shows its secret once."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ApiKeyIssueForm(
            request.POST if request.method == "POST" else None,
            initial={"scopes": " ".join(token_settings.API_KEY_SCOPES)},
        )
        if request.method == "POST" and form.is_valid():
            days = form.cleaned_data["expires_in_days"]
            issued = api_keys.issue(
                form.cleaned_data["owner"],
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_in=timedelta(days=days) if days else None,
            )
            self.log_addition(request, issued.api_key, [{"added": {}}])
            return self._secrets_page(request, [issued], _("API key issued"))
        return self._confirm_page(
            request,
            title=_("Issue an API key"),
            question=_("The secret is shown once, on the next page."),
            form=form,
            form_action=request.path,
            confirm_label=_("Issue key"),
        )

    @audited
    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        key = self._live_key_or_redirect(request, object_id)
        if isinstance(key, HttpResponse):
            return key
        return self._rotate(request, [key], form_action=request.path, action="")

    @audited
    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        key = self._live_key_or_redirect(request, object_id)
        if isinstance(key, HttpResponse):
            return key
        if request.method == "POST" and request.POST.get("post"):
            self._revoke(request, [key])
            return HttpResponseRedirect(self._url("change", key.pk))
        return self._confirm_page(
            request,
            title=_("Revoke API key"),
            question=_(
                "Revoke this key? Its assertions are refused at once, its sessions stop "
                "refreshing and their access tokens are refused."
            ),
            items=_key_items([key]),
            form_action=request.path,
            confirm_label=_("Yes, revoke"),
        )

    def _live_key_or_redirect(self, request: HttpRequest, object_id: str) -> Any:
        key = self.get_object(request, unquote(object_id))
        if key is None:
            raise Http404
        if not self.has_change_permission(request, key):
            raise PermissionDenied
        if not key.is_live(timezone.now()):
            self.message_user(request, _("This key is revoked or expired."), messages.ERROR)
            return HttpResponseRedirect(self._url("change", key.pk))
        return key

    # -- shared by the object views and the bulk actions --------------------------------------

    def _rotate(
        self, request: HttpRequest, keys: list[ApiKey], *, form_action: str, action: str
    ) -> HttpResponse:
        form = RotateSecretForm(request.POST if request.POST.get("post") else None)
        if form.is_bound and form.is_valid():
            grace = timedelta(seconds=form.cleaned_data["grace_seconds"])
            issued = []
            for key in keys:
                try:
                    issued.append(api_keys.rotate_secret(key.key_id, grace=grace))
                except (api_keys.ApiKeyNotFound, api_keys.ApiKeyNotLive):
                    continue
                self.log_change(
                    request, key, f"Rotated the secret (grace {int(grace.total_seconds())} s)."
                )
            return self._secrets_page(request, issued, _("New secrets"))
        return self._confirm_page(
            request,
            title=_("Rotate secrets"),
            question=_(
                "Give these keys new secrets? The current secrets keep working for the grace "
                "period, then stop."
            ),
            items=_key_items(keys),
            selected=[key.pk for key in keys],
            form=form,
            form_action=form_action,
            action=action,
            confirm_label=_("Rotate"),
        )

    def _revoke(self, request: HttpRequest, keys: list[ApiKey]) -> None:
        revoked_sessions = 0
        for key in keys:
            revoked_sessions += api_keys.revoke(key.key_id)
            self.log_change(request, key, "Revoked the key and its sessions.")
        self.message_user(
            request,
            _("%(keys)d key(s) and %(sessions)d session(s) revoked.")
            % {"keys": len(keys), "sessions": revoked_sessions},
            messages.SUCCESS,
        )

    @admin.action(
        description=_("Revoke selected API keys and their sessions"), permissions=["change"]
    )
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> HttpResponse | None:
        keys = list(queryset.filter(revoked_at__isnull=True).select_related("owner"))
        if request.POST.get("post"):
            self._revoke(request, keys)
            return None
        return self._confirm_page(
            request,
            title=_("Revoke API keys"),
            question=_(
                "Revoke these keys? Their assertions are refused at once, their sessions stop "
                "refreshing and their access tokens are refused."
            ),
            items=_key_items(keys),
            selected=[key.pk for key in keys],
            action="revoke_selected",
            confirm_label=_("Yes, revoke"),
        )

    @admin.action(description=_("Rotate the secrets of selected API keys"), permissions=["change"])
    def rotate_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse:
        now = timezone.now()
        keys = [key for key in queryset.select_related("owner") if key.is_live(now)]
        return self._rotate(request, keys, form_action="", action="rotate_selected")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail, read-only: nobody adds, changes or deletes an entry here
    (``purge_tokens`` removes entries older than ``AUDIT_RETENTION``)."""

    list_display = (
        "created_at",
        "action",
        "actor",
        "username",
        "service",
        "client_id",
        "api_key_id",
        "session_id",
        "signing_kid",
        "ip",
    )
    list_filter = ("action", "service", "created_at")
    search_fields = ("actor", "username", "=user_id_value", "api_key_id", "client_id")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "action",
        "actor",
        "ip",
        "user_id_value",
        "username",
        "service",
        "session_id",
        "api_key_id",
        "client_id",
        "signing_kid",
        "detail",
    )
    readonly_fields = fields
    show_full_result_count = False  # no COUNT(*) over a long trail on every page

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent], search_term: str
    ) -> tuple[QuerySet[AuditEvent], bool]:
        """Besides the text fields: a session id finds that session's entries, an address
        the entries from it."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        with suppress(ValueError):
            return results | queryset.filter(session_id=uuid.UUID(term)), may_have_duplicates
        with suppress(ValueError):
            return results | queryset.filter(
                ip=str(ipaddress.ip_address(term))
            ), may_have_duplicates
        return results, may_have_duplicates

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UserMetadata)
class UserMetadataAdmin(admin.ModelAdmin):
    """``app_metadata`` and ``user_metadata`` travel in ID tokens granted those scopes."""

    list_display = ("user", "email_verified")
    list_filter = ("email_verified",)
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user",)


# -- users -----------------------------------------------------------------------------------


class ApiKeyInline(admin.TabularInline):
    """A user's API keys, read-only, each linking to its page (rotate, revoke)."""

    model = ApiKey
    fk_name = "owner"
    fields = ("key_id", "name", "scope", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class UserTokensAdminMixin(_PagesMixin):
    """For the project's user admin: a "Tokens" section on the user's page linking to their
    sessions and API keys (with the live counts), the user's API keys inline, and an action
    that revokes all of a user's credentials (when an employee leaves)::

        admin.site.unregister(User)

        @admin.register(User)
        class UserAdmin(UserTokensAdminMixin, django.contrib.auth.admin.UserAdmin):
            inlines = [ApiKeyInline]
            actions = ["revoke_credentials"]
    """

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))  # type: ignore[misc]
        if obj is not None:
            fieldsets.append((_("Tokens"), {"fields": ["token_links"]}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_readonly_fields(request, obj), "token_links")  # type: ignore[misc]

    @admin.display(description=_("sessions and API keys"))
    def token_links(self, obj: Any) -> str:
        now = timezone.now()
        live_sessions = Session.objects.filter(
            user=obj, revoked_at__isnull=True, expires_at__gt=now
        ).count()
        live_keys = (
            ApiKey.objects.filter(owner=obj, revoked_at__isnull=True)
            .exclude(expires_at__lte=now)
            .count()
        )
        return format_html(
            '<a href="{}?user__id__exact={}">{}</a> · <a href="{}?owner__id__exact={}">{}</a>',
            reverse("admin:django_tokens_session_changelist"),
            obj.pk,
            ngettext("%d live session", "%d live sessions", live_sessions) % live_sessions,
            reverse("admin:django_tokens_apikey_changelist"),
            obj.pk,
            ngettext("%d live API key", "%d live API keys", live_keys) % live_keys,
        )

    @admin.action(
        description=_("Revoke all sessions, API keys and OAuth 2.0 tokens of selected users"),
        permissions=["change"],
    )
    def revoke_credentials(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        users = list(queryset)
        if not request.POST.get("post"):
            return self._confirm_page(
                request,
                title=_("Revoke credentials"),
                question=_(
                    "Revoke every session, API key and OAuth 2.0 token of these users? Their "
                    "refresh tokens stop at once and their access tokens are refused."
                ),
                items=[str(user) for user in users],
                selected=[user.pk for user in users],
                action="revoke_credentials",
                confirm_label=_("Yes, revoke"),
            )
        totals = [0, 0]
        for user in users:
            keys, _key_sessions = api_keys.revoke_all_of(user)
            totals[0] += keys
            totals[1] += sessions.revoke_user(user, reason="admin")
            receivers.revoke_oauth2_tokens_of_user(user)
            self.log_change(request, user, "Revoked all sessions, API keys and OAuth 2.0 tokens.")  # type: ignore[attr-defined]
        self.message_user(  # type: ignore[attr-defined]
            request,
            _("%(users)d user(s): %(keys)d key(s) and %(sessions)d other session(s) revoked.")
            % {"users": len(users), "keys": totals[0], "sessions": totals[1]},
            messages.SUCCESS,
        )
        return None
