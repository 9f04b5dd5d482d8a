"""Every model change has its migration."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from django_tokens.models import Session


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_the_check_fails_when_a_model_changes_without_a_migration() -> None:
    field = Session._meta.get_field("revoke_reason")
    original = field.max_length
    field.max_length = original + 1
    try:
        with pytest.raises(SystemExit) as exit_info:
            call_command("makemigrations", "--check", "--dry-run", verbosity=0)
    finally:
        field.max_length = original

    assert exit_info.value.code == 1
