"""Admin screens: read-only views of the keystore and sessions, revocation as an action.

Nothing secret is shown: private keys and refresh-token digests are not displayed.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_tokens import api_keys, sessions
from django_tokens.models import ApiKey, Session, SigningKey, UserMetadata


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
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


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "service", "scope", "created_at", "expires_at", "revoked_at")
    list_filter = ("service", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "user__username", "user__email")
    list_select_related = ("user",)
    readonly_fields = (
        "id",
        "user",
        "service",
        "scope",
        "created_at",
        "expires_at",
        "revoked_at",
        "revoke_reason",
    )
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead; purge_tokens removes what has expired

    @admin.action(description=_("Revoke selected sessions"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        count = sessions.revoke_sessions(queryset, reason="admin")
        self.message_user(
            request,
            ngettext("%d session revoked.", "%d sessions revoked.", count) % count,
            messages.SUCCESS,
        )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """API keys are issued with ``create_api_key`` (the secret is shown once, there); here
    they are listed, searched and revoked. No secret is ever displayed."""

    list_display = (
        "name",
        "key_id",
        "owner",
        "scope",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
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
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(
        description=_("Revoke selected API keys and their sessions"), permissions=["change"]
    )
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True).values_list("key_id", flat=True))
        revoked_sessions = sum(api_keys.revoke(key_id) for key_id in keys)
        self.message_user(
            request,
            _("%(keys)d key(s) and %(sessions)d session(s) revoked.")
            % {"keys": len(keys), "sessions": revoked_sessions},
            messages.SUCCESS,
        )


@admin.register(UserMetadata)
class UserMetadataAdmin(admin.ModelAdmin):
    """``app_metadata`` and ``user_metadata`` travel in ID tokens granted those scopes."""

    list_display = ("user", "email_verified")
    list_filter = ("email_verified",)
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user",)
