import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import signals
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tokens import jws, keystore, sessions
from django_tokens.conf import max_token_lifetime
from django_tokens.crypto import DecryptionError, SecretBox, secret_box
from django_tokens.maintenance import purge, reencrypt_secrets
from django_tokens.models import AuditEvent, RefreshToken, Session, SigningKey
from tests.keys import FERNET_KEY_FOREIGN, FERNET_KEY_NEW

pytestmark = pytest.mark.django_db

PASSWORD = Session.Service.PASSWORD


def tokens_settings(**overrides):
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


def rotated_encryption_keys():
    return tokens_settings(
        ENCRYPTION_KEYS=[FERNET_KEY_NEW, *settings.DJANGO_TOKENS["ENCRYPTION_KEYS"]]
    )


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


def sign(sub: str) -> str:
    key = keystore.signing_key()
    issued_at = int(time.time())
    return jws.sign(
        {"sub": sub, "iat": issued_at, "exp": issued_at + 60},
        key.private_key,
        key.algorithm,
        kid=key.kid,
    )


def verify(token: str) -> dict:
    key = keystore.verification_key(jws.unverified_header(token)["kid"])
    assert key is not None
    return jws.verify(token, key.public_key, key.algorithm)


# -- purge ---------------------------------------------------------------------------------


def test_purge_removes_what_can_no_longer_be_used_and_keeps_the_rest(user, now):
    day = timedelta(days=1)
    live = sessions.start(user, service=PASSWORD, now=now)
    stale_member = sessions.start(user, service=PASSWORD, now=now - 20 * day)
    fresh_member = sessions.rotate(stale_member.refresh_token, service=PASSWORD, now=now - 10 * day)
    sessions.start(user, service=PASSWORD, now=now - 40 * day)
    long_revoked = sessions.start(user, service=PASSWORD, now=now - 2 * day)
    sessions.revoke_session(
        long_revoked.session.pk, now=now - timedelta(seconds=max_token_lifetime() + 1)
    )
    recently_revoked = sessions.start(user, service=PASSWORD, now=now - 2 * day)
    sessions.revoke_session(recently_revoked.session.pk, now=now - timedelta(seconds=60))

    result = purge(now=now)

    assert result.counts == {
        "refresh tokens": 2,
        "sessions": 2,
        "audit events": 0,
        "oauth2 rows": 0,
        "signing keys retired": 0,
    }
    assert set(Session.objects.values_list("pk", flat=True)) == {
        live.session.pk,
        stale_member.session.pk,
        recently_revoked.session.pk,
    }
    assert set(RefreshToken.objects.values_list("token_hash", flat=True)) == {
        sessions.digest(token)
        for token in (
            live.refresh_token,
            fresh_member.refresh_token,
            recently_revoked.refresh_token,
        )
    }
    assert sessions.rotate(live.refresh_token, service=PASSWORD, now=now)
    assert sessions.rotate(fresh_member.refresh_token, service=PASSWORD, now=now)


def test_purge_deletes_in_batches(user, now):
    for _ in range(5):
        sessions.start(user, service=PASSWORD, now=now - timedelta(days=40))
    assert RefreshToken.objects.count() == 5

    with CaptureQueriesContext(connection) as queries:
        result = purge(batch_size=2, now=now)

    assert result.counts["refresh tokens"] == 5
    assert result.counts["sessions"] == 5
    assert not RefreshToken.objects.exists()
    assert not Session.objects.exists()
    for model in (RefreshToken, Session):
        table = model._meta.db_table
        batches = [
            query["sql"]
            for query in queries
            if query["sql"].startswith(f'DELETE FROM "{table}" WHERE "{table}"."id" IN')
        ]
        assert len(batches) == 3, batches


def test_purge_removes_a_batch_of_sessions_without_loading_it(user, now):
    """Each batch of sessions goes in two statements (its refresh tokens, then the sessions),
    not through Django's collector, which reads every session of the batch and deletes them
    100 at a time (0.2 s a batch of 5,000)."""
    for _ in range(250):
        sessions.start(user, service=PASSWORD, now=now - timedelta(days=20))
    assert RefreshToken.objects.count() == 250

    with CaptureQueriesContext(connection) as queries:
        result = purge(batch_size=1000, now=now + timedelta(days=20))

    assert result.counts["sessions"] == 250
    assert not Session.objects.exists()
    assert not RefreshToken.objects.exists()
    session_table, refresh_table = Session._meta.db_table, RefreshToken._meta.db_table
    touching = [query["sql"] for query in queries if f'"{session_table}"' in query["sql"]]
    deletes = [sql for sql in touching if sql.startswith(f'DELETE FROM "{session_table}"')]
    reads = [sql for sql in touching if sql.startswith("SELECT")]
    assert len(deletes) == 1
    assert len(reads) == 2  # the batch's keys, and the empty pick that ends the step
    assert all(f'"{session_table}"."id"' in sql.split("FROM")[0] for sql in reads)
    refresh_deletes = [
        query["sql"]
        for query in queries
        if query["sql"].startswith(f'DELETE FROM "{refresh_table}"')
    ]
    # the expired refresh tokens' step (one batch), then the session batch's dependents
    assert len(refresh_deletes) == 2


def test_purge_lets_django_collect_sessions_when_someone_listens(user, now):
    heard = []

    def listener(sender, instance, **kwargs):
        heard.append(instance.pk)

    gone = [
        sessions.start(user, service=PASSWORD, now=now - timedelta(days=40)).session.pk
        for _ in range(3)
    ]
    signals.post_delete.connect(listener, sender=Session)
    try:
        result = purge(batch_size=2, now=now)
    finally:
        signals.post_delete.disconnect(listener, sender=Session)

    assert result.counts["sessions"] == 3
    assert sorted(heard) == sorted(gone)
    assert not Session.objects.exists()


def test_purge_picks_its_batches_without_sorting_them(user, now):
    """A batch is any matching rows: the models' default ordering would make the database
    sort every remaining match again for each batch (half a second per batch with 10^6
    expired sessions)."""
    for days in (40, 41):
        sessions.start(user, service=PASSWORD, now=now - timedelta(days=days))

    with CaptureQueriesContext(connection) as queries:
        purge(batch_size=1, now=now, audit_retention=timedelta(days=1))

    tables = [model._meta.db_table for model in (RefreshToken, Session, AuditEvent)]
    picks = [
        query["sql"]
        for query in queries
        if query["sql"].startswith("SELECT")
        and "LIMIT" in query["sql"]
        and any(f'FROM "{table}"' in query["sql"] for table in tables)
    ]
    assert len(picks) == 9  # two batches and an empty pick per table
    assert [sql for sql in picks if "ORDER BY" in sql] == []


def test_purge_reports_progress_per_step(user, now):
    sessions.start(user, service=PASSWORD, now=now - timedelta(days=40))
    seen = []
    purge(now=now, progress=lambda label, count: seen.append((label, count)))
    assert seen == [
        ("refresh tokens", 1),
        ("sessions", 1),
        ("audit events", 0),
        ("oauth2 rows", 0),
        ("signing keys retired", 0),
    ]


def test_purge_retires_retiring_keys_past_retire_after(now):
    old = keystore.signing_key()
    keystore.rotate(now=now)
    retire_after = SigningKey.objects.get(kid=old.kid).retire_after

    assert purge(now=retire_after - timedelta(seconds=1)).counts["signing keys retired"] == 0
    assert SigningKey.objects.get(kid=old.kid).state == SigningKey.State.RETIRING

    result = purge(now=retire_after)

    assert result.counts["signing keys retired"] == 1
    retired = SigningKey.objects.get(kid=old.kid)
    assert (retired.state, retired.retired_at) == (SigningKey.State.RETIRED, retire_after)
    assert SigningKey.objects.filter(state=SigningKey.State.ACTIVE).count() == 1
    assert SigningKey.objects.filter(state=SigningKey.State.NEXT).count() == 1


# -- re-encryption -------------------------------------------------------------------------


def test_reencrypt_secrets_moves_every_private_key_under_the_newest_key():
    keystore.signing_key()
    keystore.rotate()
    active_kid = keystore.signing_key().kid
    signed_before = sign("before")
    old_ciphertexts = dict(SigningKey.objects.values_list("pk", "encrypted_private_key"))
    assert len(old_ciphertexts) == 3

    with rotated_encryption_keys():
        result = reencrypt_secrets()

    assert (result.reencrypted, result.already_current, result.failed) == (3, 0, [])
    only_new = SecretBox([FERNET_KEY_NEW])
    for pk, ciphertext in SigningKey.objects.values_list("pk", "encrypted_private_key"):
        assert ciphertext != old_ciphertexts[pk]
        assert only_new.decrypt(ciphertext) == secret_box().decrypt(old_ciphertexts[pk])

    with tokens_settings(ENCRYPTION_KEYS=[FERNET_KEY_NEW]):
        assert keystore.signing_key().kid == active_kid
        assert verify(signed_before)["sub"] == "before"
        assert verify(sign("after"))["sub"] == "after"


def test_reencrypt_secrets_is_idempotent():
    keystore.signing_key()
    with rotated_encryption_keys():
        first = reencrypt_secrets()
        snapshot = dict(SigningKey.objects.values_list("pk", "encrypted_private_key"))
        second = reencrypt_secrets()
    assert (first.reencrypted, first.already_current) == (2, 0)
    assert (second.reencrypted, second.already_current, second.failed) == (0, 2, [])
    assert dict(SigningKey.objects.values_list("pk", "encrypted_private_key")) == snapshot


def test_undecryptable_row_is_reported_and_left_untouched():
    keystore.signing_key()
    broken = SigningKey.objects.get(state=SigningKey.State.NEXT)
    foreign = SecretBox([FERNET_KEY_FOREIGN]).encrypt(b"not ours")
    SigningKey.objects.filter(pk=broken.pk).update(encrypted_private_key=foreign)

    with rotated_encryption_keys():
        result = reencrypt_secrets()

    assert result.failed == [f"django_tokens.SigningKey:{broken.pk}"]
    assert (result.reencrypted, result.already_current) == (1, 0)
    assert SigningKey.objects.get(pk=broken.pk).encrypted_private_key == foreign
    with rotated_encryption_keys(), pytest.raises(DecryptionError):
        secret_box().decrypt(foreign)


def test_purge_clears_expired_oauth2_codes_and_tokens_and_keeps_live_ones(user):
    from oauth2_provider.models import AccessToken, Application, Grant
    from oauth2_provider.models import RefreshToken as DOTRefresh

    application = Application.objects.create(
        name="purge-client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://client.example/cb",
    )
    now = timezone.now()

    def grant(code: str, expires) -> Grant:
        return Grant.objects.create(
            application=application,
            user=user,
            code=code,
            expires=expires,
            redirect_uri="https://client.example/cb",
            scope="read",
            code_challenge="x" * 43,
            code_challenge_method="S256",
        )

    grant("expired-code", now - timedelta(seconds=1))
    live_grant = grant("live-code", now + timedelta(seconds=60))
    AccessToken.objects.create(
        application=application, user=user, token="expired", scope="read", expires=now
    )
    live = AccessToken.objects.create(
        application=application,
        user=user,
        token="live",
        scope="read",
        expires=now + timedelta(hours=1),
    )
    DOTRefresh.objects.create(
        application=application, user=user, token="refresh", access_token=live
    )

    result = purge()

    assert result.counts["oauth2 rows"] == 2
    assert list(Grant.objects.values_list("pk", flat=True)) == [live_grant.pk]
    assert list(AccessToken.objects.values_list("pk", flat=True)) == [live.pk]
    assert DOTRefresh.objects.get().access_token_id == live.pk
