import base64
import re
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tokens import api_keys, sessions
from django_tokens.api_keys import ApiKeyNotFound
from django_tokens.crypto import SecretBox, secret_box
from django_tokens.maintenance import reencrypt_secrets
from django_tokens.models import ApiKey, Session
from tests.keys import FERNET_KEY_NEW

pytestmark = pytest.mark.django_db

API_KEY = Session.Service.API_KEY
GRACE = timedelta(hours=1)
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def tokens_settings(**overrides):
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def issued(user, now):
    return api_keys.issue(user, name="ci-bot", now=now)


def reloaded(api_key: ApiKey) -> ApiKey:
    return ApiKey.objects.get(pk=api_key.pk)


def decrypted(ciphertext: str) -> str:
    return secret_box().decrypt(ciphertext).decode()


def verification_secrets(api_key: ApiKey, now) -> list[str]:
    return [secret.decode() for secret in api_keys.secrets_for_verification(api_key, now)]


def stored_cells(api_key: ApiKey) -> list[str]:
    """Every column of the key's row, as the database returns it."""
    table = connection.ops.quote_name(ApiKey._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [api_key.pk])
        row = cursor.fetchone()
    return [str(cell) for cell in row]


def assert_not_stored_in_the_clear(api_key: ApiKey, secret: str) -> None:
    cells = stored_cells(api_key)
    assert len(cells) == len(ApiKey._meta.concrete_fields)
    assert not [cell for cell in cells if secret in cell]


# -- issue ---------------------------------------------------------------------------------


def test_issue_returns_a_key_id_with_the_configured_prefix_and_random_suffix(user):
    with tokens_settings(API_KEY_ID_PREFIX="acme_"):
        key_ids = [api_keys.issue(user, name=f"key-{n}").api_key.key_id for n in range(20)]

    assert len(set(key_ids)) == len(key_ids)
    for key_id in key_ids:
        prefix, suffix = key_id[:5], key_id[5:]
        assert prefix == "acme_"
        assert re.fullmatch(r"[0-9a-f]{24,}", suffix), key_id
    assert ApiKey.objects.filter(key_id__in=key_ids).count() == len(key_ids)


def test_issue_uses_the_default_prefix(issued):
    assert issued.api_key.key_id.startswith("dtk_")


def test_issued_secret_has_256_bits_and_is_url_safe(user):
    secrets = [api_keys.issue(user, name=f"key-{n}").secret for n in range(10)]

    assert len(set(secrets)) == len(secrets)
    for secret in secrets:
        assert URL_SAFE.match(secret), secret
        raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
        assert len(raw) * 8 >= 256


def test_issued_secret_is_stored_only_encrypted(issued):
    stored = reloaded(issued.api_key)

    assert_not_stored_in_the_clear(stored, issued.secret)
    assert stored.encrypted_secret != issued.secret
    assert decrypted(stored.encrypted_secret) == issued.secret
    assert stored.encrypted_previous_secret == ""
    assert stored.previous_secret_expires_at is None


def test_issue_defaults_to_the_configured_api_key_scopes(user):
    default = api_keys.issue(user, name="default").api_key
    with tokens_settings(API_KEY_SCOPES=["openid", "profile"]):
        configured = api_keys.issue(user, name="configured").api_key

    assert reloaded(default).scopes == [
        "openid",
        "email",
        "app_metadata",
        "user_metadata",
        "profile",
    ]
    assert reloaded(configured).scopes == ["openid", "profile"]


def test_issue_with_custom_scopes(user):
    api_key = api_keys.issue(user, name="narrow", scopes=("openid", "email")).api_key

    assert reloaded(api_key).scope == "openid email"


def test_issue_records_owner_name_creation_and_no_expiry(issued, user, now):
    stored = reloaded(issued.api_key)

    assert (stored.owner, stored.name, stored.created_at) == (user, "ci-bot", now)
    assert stored.expires_at is None
    assert stored.revoked_at is None
    assert stored.is_live(now + timedelta(days=3650))


def test_issue_with_expires_in_sets_the_expiry(user, now):
    api_key = api_keys.issue(user, name="temp", expires_in=timedelta(days=90), now=now).api_key

    stored = reloaded(api_key)
    assert stored.expires_at == now + timedelta(days=90)
    assert stored.is_live(now + timedelta(days=90) - timedelta(seconds=1))
    assert not stored.is_live(now + timedelta(days=90))


# -- get -----------------------------------------------------------------------------------


def test_get_returns_the_key_with_its_owner(issued, user, django_assert_num_queries):
    with django_assert_num_queries(1):
        found = api_keys.get(issued.api_key.key_id)
        assert found.owner.get_username() == user.get_username()
    assert found.pk == issued.api_key.pk


def test_get_unknown_key_id_raises_api_key_not_found(issued):
    with pytest.raises(ApiKeyNotFound):
        api_keys.get("dtk_doesnotexist")
    with pytest.raises(ApiKeyNotFound):
        api_keys.get(issued.api_key.key_id.upper())


# -- rotate_secret -------------------------------------------------------------------------


def test_rotate_secret_returns_a_new_secret_stored_encrypted(issued, now):
    rotated = api_keys.rotate_secret(issued.api_key.key_id, now=now)

    assert rotated.secret != issued.secret
    assert rotated.api_key.pk == issued.api_key.pk
    stored = reloaded(issued.api_key)
    assert decrypted(stored.encrypted_secret) == rotated.secret
    assert_not_stored_in_the_clear(stored, rotated.secret)
    assert_not_stored_in_the_clear(stored, issued.secret)


def test_rotate_secret_with_grace_keeps_the_previous_secret_until_its_deadline(issued, now):
    rotated = api_keys.rotate_secret(issued.api_key.key_id, grace=GRACE, now=now)

    stored = reloaded(issued.api_key)
    assert decrypted(stored.encrypted_previous_secret) == issued.secret
    assert stored.previous_secret_expires_at == now + GRACE
    assert rotated.api_key.previous_secret_expires_at == now + GRACE


def test_rotate_secret_without_grace_drops_the_previous_secret(issued, now):
    api_keys.rotate_secret(issued.api_key.key_id, grace=GRACE, now=now)
    rotated = api_keys.rotate_secret(issued.api_key.key_id, now=now + timedelta(minutes=1))

    stored = reloaded(issued.api_key)
    assert stored.encrypted_previous_secret == ""
    assert stored.previous_secret_expires_at is None
    assert verification_secrets(stored, now + timedelta(minutes=1)) == [rotated.secret]


def test_rotate_secret_of_unknown_key_raises_api_key_not_found(issued):
    with pytest.raises(ApiKeyNotFound):
        api_keys.rotate_secret("dtk_doesnotexist", grace=GRACE)
    assert decrypted(reloaded(issued.api_key).encrypted_secret) == issued.secret


# -- secrets_for_verification --------------------------------------------------------------


def test_secrets_for_verification_of_a_new_key_is_its_secret(issued, now):
    assert verification_secrets(reloaded(issued.api_key), now) == [issued.secret]


def test_secrets_for_verification_lists_current_then_previous_while_the_grace_lasts(issued, now):
    rotated = api_keys.rotate_secret(issued.api_key.key_id, grace=GRACE, now=now)
    stored = reloaded(issued.api_key)

    both = [rotated.secret, issued.secret]
    assert verification_secrets(stored, now) == both
    assert verification_secrets(stored, now + GRACE - timedelta(seconds=1)) == both
    assert verification_secrets(stored, now + GRACE) == [rotated.secret]
    assert verification_secrets(stored, now + 2 * GRACE) == [rotated.secret]


def test_second_rotation_in_the_grace_makes_the_then_current_secret_the_previous(issued, now):
    first = api_keys.rotate_secret(issued.api_key.key_id, grace=GRACE, now=now)
    later = now + timedelta(minutes=10)
    second = api_keys.rotate_secret(issued.api_key.key_id, grace=GRACE, now=later)

    stored = reloaded(issued.api_key)
    assert decrypted(stored.encrypted_secret) == second.secret
    assert decrypted(stored.encrypted_previous_secret) == first.secret
    assert stored.previous_secret_expires_at == later + GRACE
    assert verification_secrets(stored, later) == [second.secret, first.secret]
    assert verification_secrets(stored, now + GRACE) == [second.secret, first.secret]
    assert verification_secrets(stored, later + GRACE) == [second.secret]


# -- concurrent rotations (PostgreSQL row locks) -------------------------------------------


def run_together(*calls):
    """Run each call in its own thread, released together; each thread closes its
    connection. Returns the results in call order; re-raises the first error."""
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not [thread for thread in threads if thread.is_alive()]
    if errors:
        raise errors[0]
    return results


def assert_one_chain(original: str, rotations: list[api_keys.IssuedSecret]) -> list[str]:
    """Each rotation's previous secret is the one it replaced: together they must form one
    chain from the original secret through every returned secret. Returns the chain."""
    successor = {}
    for rotation in rotations:
        predecessor = decrypted(rotation.api_key.encrypted_previous_secret)
        assert predecessor not in successor, "two rotations replaced the same secret"
        successor[predecessor] = rotation.secret
    chain = [original]
    while chain[-1] in successor:
        chain.append(successor[chain[-1]])
    assert sorted(chain[1:]) == sorted(rotation.secret for rotation in rotations)
    return chain


ROTATIONS = 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_chain_every_secret(user):
    issued = api_keys.issue(user, name="busy")
    key_id = issued.api_key.key_id

    rotations = run_together(*[lambda: api_keys.rotate_secret(key_id, grace=GRACE)] * ROTATIONS)

    chain = assert_one_chain(issued.secret, rotations)
    stored = reloaded(issued.api_key)
    assert decrypted(stored.encrypted_secret) == chain[-1]
    assert decrypted(stored.encrypted_previous_secret) == chain[-2]
    assert verification_secrets(stored, timezone.now()) == [chain[-1], chain[-2]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_and_revoke_leave_a_revoked_key_with_readable_secrets(user):
    issued = api_keys.issue(user, name="busy")
    key_id = issued.api_key.key_id
    opened = sessions.start(user, service=API_KEY, api_key=issued.api_key)

    def rotate_unless_revoked():
        try:
            return api_keys.rotate_secret(key_id, grace=GRACE)
        except api_keys.ApiKeyNotLive:
            return None  # came after the revoke: a revoked key gets no new secret

    *results, revoked_sessions = run_together(
        *[rotate_unless_revoked] * ROTATIONS, lambda: api_keys.revoke(key_id)
    )

    assert revoked_sessions == 1
    stored = reloaded(issued.api_key)
    assert stored.revoked_at is not None
    rotations = [rotation for rotation in results if rotation is not None]
    assert all(rotation.api_key.revoked_at is None for rotation in rotations)
    chain = assert_one_chain(issued.secret, rotations)
    expected = [chain[-1], chain[-2]] if rotations else [chain[-1]]
    assert verification_secrets(stored, timezone.now()) == expected
    assert Session.objects.get(pk=opened.session.pk).revoked_at is not None


# -- revoke --------------------------------------------------------------------------------


def open_sessions(user, api_key, count, now):
    return [
        sessions.start(user, service=API_KEY, scopes=api_key.scopes, api_key=api_key, now=now)
        for _ in range(count)
    ]


def test_revoke_sets_revoked_at_and_revokes_the_keys_sessions(issued, user, now):
    opened = open_sessions(user, issued.api_key, 3, now)
    other_key = api_keys.issue(user, name="other", now=now).api_key
    (other_session,) = open_sessions(user, other_key, 1, now)
    password_session = sessions.start(user, service=Session.Service.PASSWORD, now=now)
    later = now + timedelta(minutes=5)

    assert api_keys.revoke(issued.api_key.key_id, now=later) == 3

    stored = reloaded(issued.api_key)
    assert stored.revoked_at == later
    assert not stored.is_live(later)
    for refreshed in opened:
        session = Session.objects.get(pk=refreshed.session.pk)
        assert (session.revoked_at, session.revoke_reason) == (later, "api_key_revoked")
        with pytest.raises(sessions.InvalidRefreshToken):
            sessions.rotate(refreshed.refresh_token, service=API_KEY, now=later)
    assert reloaded(other_key).revoked_at is None
    for untouched in (other_session, password_session):
        assert Session.objects.get(pk=untouched.session.pk).revoked_at is None
        assert not sessions.is_revoked({"sid": str(untouched.session.pk)})


def test_revoke_writes_a_revocation_mark_per_session(issued, user, now):
    opened = open_sessions(user, issued.api_key, 3, now)
    sids = [str(refreshed.session.pk) for refreshed in opened]
    assert not [sid for sid in sids if sessions.is_revoked({"sid": sid})]

    api_keys.revoke(issued.api_key.key_id, now=now)

    assert [sid for sid in sids if sessions.is_revoked({"sid": sid})] == sids


def revoke_queries(user, count, now):
    api_key = api_keys.issue(user, name=f"{count} sessions", now=now).api_key
    open_sessions(user, api_key, count, now)
    with CaptureQueriesContext(connection) as queries:
        assert api_keys.revoke(api_key.key_id, now=now) == count
    assert Session.objects.filter(api_key=api_key, revoked_at=now).count() == count
    return [query["sql"] for query in queries]


def test_revoke_runs_a_constant_number_of_queries(user, now):
    few = revoke_queries(user, 3, now)
    many = revoke_queries(user, 30, now)

    assert len(few) == len(many), many


def test_revoke_is_idempotent(issued, user, now):
    open_sessions(user, issued.api_key, 2, now)
    assert api_keys.revoke(issued.api_key.key_id, now=now) == 2

    assert api_keys.revoke(issued.api_key.key_id, now=now + timedelta(hours=1)) == 0

    stored = reloaded(issued.api_key)
    assert stored.revoked_at == now
    assert set(
        Session.objects.filter(api_key=stored).values_list("revoked_at", "revoke_reason")
    ) == {(now, "api_key_revoked")}


def test_revoke_unknown_key_raises_api_key_not_found(issued):
    with pytest.raises(ApiKeyNotFound):
        api_keys.revoke("dtk_doesnotexist")
    assert reloaded(issued.api_key).revoked_at is None


# -- sessions opened with a key ------------------------------------------------------------


def test_session_opened_with_an_expiring_key_ends_when_the_key_expires(user, now):
    api_key = api_keys.issue(user, name="short", expires_in=timedelta(hours=2), now=now).api_key

    opened = sessions.start(user, service=API_KEY, api_key=api_key, now=now)

    assert opened.session.expires_at == api_key.expires_at
    assert opened.refresh_expires_at == api_key.expires_at
    assert Session.objects.get(pk=opened.session.pk).expires_at == now + timedelta(hours=2)
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.rotate(opened.refresh_token, service=API_KEY, now=api_key.expires_at)


def test_session_opened_with_a_key_without_expiry_lasts_the_session_lifetime(issued, user, now):
    with tokens_settings(SESSION_LIFETIME=7200):
        opened = sessions.start(user, service=API_KEY, api_key=issued.api_key, now=now)

    assert opened.session.expires_at == now + timedelta(seconds=7200)
    assert opened.session.api_key == issued.api_key


def test_session_of_a_key_expiring_after_the_session_lifetime_keeps_the_lifetime(user, now):
    api_key = api_keys.issue(user, name="long", expires_in=timedelta(days=365), now=now).api_key

    with tokens_settings(SESSION_LIFETIME=7200):
        opened = sessions.start(user, service=API_KEY, api_key=api_key, now=now)

    assert opened.session.expires_at == now + timedelta(seconds=7200)


# -- re-encryption -------------------------------------------------------------------------


def test_reencrypt_secrets_moves_current_and_previous_secrets_under_the_newest_key(user, now):
    rotated_key = api_keys.issue(user, name="rotated", now=now)
    rotated = api_keys.rotate_secret(rotated_key.api_key.key_id, grace=GRACE, now=now)
    plain = api_keys.issue(user, name="plain", now=now)
    before = {
        pk: (current, previous)
        for pk, current, previous in ApiKey.objects.values_list(
            "pk", "encrypted_secret", "encrypted_previous_secret"
        )
    }

    with tokens_settings(
        ENCRYPTION_KEYS=[FERNET_KEY_NEW, *settings.DJANGO_TOKENS["ENCRYPTION_KEYS"]]
    ):
        first = reencrypt_secrets()
        second = reencrypt_secrets()

    assert (first.reencrypted, first.already_current, first.failed) == (3, 0, [])
    assert (second.reencrypted, second.already_current, second.failed) == (0, 3, [])
    for pk, current, previous in ApiKey.objects.values_list(
        "pk", "encrypted_secret", "encrypted_previous_secret"
    ):
        assert current != before[pk][0]
        assert previous == "" or previous != before[pk][1]
    with tokens_settings(ENCRYPTION_KEYS=[FERNET_KEY_NEW]):
        only_new = SecretBox([FERNET_KEY_NEW])
        stored = reloaded(rotated_key.api_key)
        assert only_new.decrypt(stored.encrypted_previous_secret).decode() == rotated_key.secret
        assert verification_secrets(stored, now) == [rotated.secret, rotated_key.secret]
        assert verification_secrets(reloaded(plain.api_key), now) == [plain.secret]


def test_a_key_revoked_after_its_assertion_was_checked_opens_no_session(issued, now):
    from django_tokens.errors import InvalidCredentials
    from django_tokens.services import api_key as api_key_service

    checked = ApiKey.objects.select_related("owner").get(pk=issued.api_key.pk)
    assert checked.is_live(now)
    api_keys.revoke(checked.key_id, now=now)

    with pytest.raises(InvalidCredentials):
        api_key_service._open_session(checked, issuer="http://testserver", now=now)

    assert not Session.objects.filter(api_key=checked).exists()


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_rotating_a_revoked_or_expired_key_is_refused(issued, now, state):
    if state == "revoked":
        api_keys.revoke(issued.api_key.key_id, now=now)
    else:
        ApiKey.objects.filter(pk=issued.api_key.pk).update(expires_at=now)
    before = reloaded(issued.api_key).encrypted_secret

    with pytest.raises(api_keys.ApiKeyNotLive):
        api_keys.rotate_secret(issued.api_key.key_id, now=now)

    assert reloaded(issued.api_key).encrypted_secret == before
