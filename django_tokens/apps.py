from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoTokensConfig(AppConfig):
    name = "django_tokens"
    verbose_name = _("Tokens")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for their side effects: the system checks and the OpenAPI extensions.
        from django_tokens import checks, schema  # noqa: F401
