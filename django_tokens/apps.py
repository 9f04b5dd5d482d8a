from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoTokensConfig(AppConfig):
    name = "django_tokens"
    verbose_name = _("Tokens")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.apps import apps
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save, pre_delete

        # Imported for their side effects: the system checks and the OpenAPI extensions.
        from django_tokens import checks, receivers, schema  # noqa: F401
        from django_tokens.models import ApiKey

        user_model = get_user_model()
        pre_delete.connect(
            receivers.revoke_sessions_of_deleted_user,
            sender=user_model,
            dispatch_uid="django_tokens.revoke_deleted_user",
        )
        post_save.connect(
            receivers.revoke_sessions_of_deactivated_user,
            sender=user_model,
            dispatch_uid="django_tokens.revoke_deactivated_user",
        )
        pre_delete.connect(
            receivers.revoke_sessions_of_deleted_api_key,
            sender=ApiKey,
            dispatch_uid="django_tokens.revoke_deleted_api_key",
        )
        if apps.is_installed("oauth2_provider"):
            from oauth2_provider.models import get_access_token_model

            from django_tokens import redaction

            redaction.install()

            post_delete.connect(
                receivers.mark_deleted_access_token,
                sender=get_access_token_model(),
                dispatch_uid="django_tokens.mark_deleted_access_token",
            )
