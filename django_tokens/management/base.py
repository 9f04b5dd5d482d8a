"""What the app's management commands share."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_tokens import audit


class TokensCommand(BaseCommand):
    """A command whose changes the audit trail attributes to ``manage.py <command>``."""

    def execute(self, *args: Any, **options: Any) -> Any:
        name = type(self).__module__.rsplit(".", 1)[-1]
        with audit.context(actor=f"manage.py {name}"):
            return super().execute(*args, **options)
