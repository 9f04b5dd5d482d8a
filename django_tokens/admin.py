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

from django_tokens import sessions
from django_tokens.models import Session, SigningKey


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

    @admin.action(description=_("Revoke selected sessions"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        count = sessions.revoke_sessions(queryset, reason="admin")
        self.message_user(
            request,
            ngettext("%d session revoked.", "%d sessions revoked.", count) % count,
            messages.SUCCESS,
        )
