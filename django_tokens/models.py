"""Stored state: signing keys, sessions (refresh-token families) and refresh tokens.

No raw secret is stored: private keys are encrypted with the secret box, refresh tokens are
kept as SHA-256 digests (they carry 256 bits of entropy, so a slow hash adds nothing).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class SigningKey(models.Model):
    """One asymmetric key of the keystore, published in the JWKS while tokens may need it.

    Life cycle: ``next`` (published before use, so verifiers have it in their cached JWKS)
    -> ``active`` (signs every new token; exactly one) -> ``retiring`` (published until
    ``retire_after``, when every token it signed has expired) -> ``retired``.
    """

    class State(models.TextChoices):
        NEXT = "next", _("next")
        ACTIVE = "active", _("active")
        RETIRING = "retiring", _("retiring")
        RETIRED = "retired", _("retired")

    class Algorithm(models.TextChoices):
        RS256 = "RS256", "RS256"
        RS512 = "RS512", "RS512"
        ES256 = "ES256", "ES256"
        EDDSA = "EdDSA", "EdDSA"

    kid = models.CharField(_("key id"), max_length=64, unique=True, editable=False)
    algorithm = models.CharField(_("algorithm"), max_length=8, choices=Algorithm.choices)
    state = models.CharField(_("state"), max_length=8, choices=State.choices, db_index=True)
    encrypted_private_key = models.TextField(editable=False)
    public_jwk = models.JSONField(_("public JWK"), editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    activated_at = models.DateTimeField(_("activated"), null=True, blank=True)
    retiring_at = models.DateTimeField(_("retiring since"), null=True, blank=True)
    retire_after = models.DateTimeField(_("published until"), null=True, blank=True)
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)

    class Meta:
        verbose_name = _("signing key")
        verbose_name_plural = _("signing keys")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"],
                condition=Q(state="active"),
                name="django_tokens_one_active_signing_key",
            ),
            models.UniqueConstraint(
                fields=["state"],
                condition=Q(state="next"),
                name="django_tokens_one_next_signing_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.algorithm}, {self.state})"


def default_api_key_scope() -> str:
    return "openid email app_metadata user_metadata profile"


class ApiKey(models.Model):
    """A user's API key: a public ``key_id`` and a shared secret that signs HS256 assertions.

    The secret must be recoverable to check HMACs, so it is encrypted at rest with the secret
    box. After a rotation the previous secret keeps working until ``previous_secret_expires_at``.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name=_("owner"),
    )
    name = models.CharField(_("name"), max_length=100)
    key_id = models.CharField(_("key id"), max_length=64, unique=True, editable=False)
    encrypted_secret = models.TextField(editable=False)
    encrypted_previous_secret = models.TextField(editable=False, blank=True)
    previous_secret_expires_at = models.DateTimeField(
        _("previous secret valid until"), null=True, blank=True, editable=False
    )
    scope = models.CharField(_("scope"), max_length=1000, default=default_api_key_scope)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    def is_live(self, now: datetime) -> bool:
        """Neither revoked nor expired (the owner's state is checked separately)."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class UserMetadata(models.Model):
    """Per-user facts for ID tokens: ``app_metadata`` (set by the operator) and
    ``user_metadata`` (about the user), JSON objects editable in the admin."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="token_metadata",
        verbose_name=_("user"),
    )
    email_verified = models.BooleanField(_("email verified"), default=False)
    app_metadata = models.JSONField(_("app metadata"), default=dict, blank=True)
    user_metadata = models.JSONField(_("user metadata"), default=dict, blank=True)

    class Meta:
        verbose_name = _("user metadata")
        verbose_name_plural = _("user metadata")

    def __str__(self) -> str:
        return f"metadata of {self.user}"


class Session(models.Model):
    """A login: one family of refresh tokens, and the ``sid`` claim of its access tokens."""

    class Service(models.TextChoices):
        PASSWORD = "password", _("password")
        API_KEY = "api_key", _("API key")
        OAUTH2 = "oauth2", _("OAuth 2.0")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="token_sessions",
        verbose_name=_("user"),
    )
    service = models.CharField(_("service"), max_length=16, choices=Service.choices)
    api_key = models.ForeignKey(
        ApiKey,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sessions",
        verbose_name=_("API key"),
    )
    scope = models.CharField(_("scope"), max_length=1000, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"), db_index=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoke_reason = models.CharField(_("revocation reason"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("session")
        verbose_name_plural = _("sessions")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="django_tokens_user_live")]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()


class RefreshToken(models.Model):
    """One member of a session's refresh-token family, stored as a digest.

    ``used_at`` is set when the token is rotated (or superseded); a session has at most one
    member with ``used_at`` empty: its live refresh token.
    """

    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="refresh_tokens", verbose_name=_("session")
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"), db_index=True)
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta:
        verbose_name = _("refresh token")
        verbose_name_plural = _("refresh tokens")

    def __str__(self) -> str:
        return f"refresh token {self.pk} of session {self.session_id}"


class AuditEvent(models.Model):
    """One entry of the audit trail: what happened to which credential, who did it, when and
    from which address. Plain values, not foreign keys, so an entry outlives what it names
    (a purged session, a deleted user). Never a secret: no token, key or client secret."""

    class Action(models.TextChoices):
        TOKEN_ISSUED = "token_issued", _("tokens issued")
        TOKEN_REFRESHED = "token_refreshed", _("tokens refreshed")
        REFRESH_REUSE_DETECTED = "refresh_reuse_detected", _("refresh-token reuse detected")
        SESSION_REVOKED = "session_revoked", _("session revoked")
        OAUTH2_TOKEN_REVOKED = "oauth2_token_revoked", _("OAuth 2.0 token revoked")
        API_KEY_ISSUED = "api_key_issued", _("API key issued")
        API_KEY_SECRET_ROTATED = "api_key_secret_rotated", _("API-key secret rotated")
        API_KEY_REVOKED = "api_key_revoked", _("API key revoked")
        SIGNING_KEY_ROTATED = "signing_key_rotated", _("signing key rotated")
        SIGNING_KEY_RETIRED = "signing_key_retired", _("signing key retired")
        CLIENT_SECRET_ISSUED = "client_secret_issued", _("client secret issued")

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    action = models.CharField(_("action"), max_length=32, choices=Action.choices)
    actor = models.CharField(
        _("who"),
        max_length=200,
        blank=True,
        help_text=_("A username, client:<client id>, or manage.py <command>."),
    )
    ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    service = models.CharField(_("service"), max_length=16, blank=True)
    user_id_value = models.CharField(_("user id"), max_length=64, blank=True)
    username = models.CharField(_("user"), max_length=254, blank=True)
    session_id = models.UUIDField(_("session"), null=True, blank=True)
    api_key_id = models.CharField(_("API key"), max_length=64, blank=True)
    client_id = models.CharField(_("client"), max_length=255, blank=True)
    signing_kid = models.CharField(_("signing key"), max_length=64, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit trail entries")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"
