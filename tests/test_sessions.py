import threading
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import caches as django_caches
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tokens import sessions
from django_tokens.conf import token_settings
from django_tokens.crypto import digest
from django_tokens.models import AuditEvent, RefreshToken, Session
from django_tokens.sessions import InvalidRefreshToken, RefreshTokenReused

pytestmark = pytest.mark.django_db

PASSWORD = Session.Service.PASSWORD
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def tokens_settings(**overrides):
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def unreachable_cache():
    caches = {
        **settings.CACHES,
        "unreachable": {
            "BACKEND": "django_tokens.cache.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
        },
    }
    with override_settings(CACHES=caches), tokens_settings(CACHE_ALIAS="unreachable"):
        with pytest.raises(redis.exceptions.ConnectionError):
            django_caches["unreachable"].get("probe")
        yield


def live_members(session):
    return RefreshToken.objects.filter(session=session, used_at__isnull=True)


def seconds(n):
    return timedelta(seconds=n)


# -- start ---------------------------------------------------------------------------------


def test_start_stores_only_the_digest_of_the_refresh_token(user, now):
    issued = sessions.start(user, service=PASSWORD, scopes=["profile", "email"], now=now)

    member = RefreshToken.objects.get(session=issued.session)
    assert member.token_hash == digest(issued.refresh_token)
    assert member.token_hash != issued.refresh_token
    with connection.cursor() as cursor:
        for model in (RefreshToken, Session):
            cursor.execute(f"SELECT * FROM {model._meta.db_table}")
            stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
            assert issued.refresh_token not in stored
    assert len(issued.refresh_token) >= 43


def test_start_opens_a_session_with_the_configured_lifetimes(user, now):
    issued = sessions.start(user, service=PASSWORD, scopes=["profile", "email"], now=now)

    session = Session.objects.get(pk=issued.session.pk)
    assert session.user == user
    assert session.service == PASSWORD
    assert session.scopes == ["profile", "email"]
    assert session.expires_at == now + seconds(token_settings.SESSION_LIFETIME)
    assert issued.refresh_expires_at == now + seconds(token_settings.REFRESH_TOKEN_LIFETIME)
    assert RefreshToken.objects.get(session=session).expires_at == issued.refresh_expires_at


def test_refresh_expiry_never_outlives_the_session(user, now):
    with tokens_settings(SESSION_LIFETIME=600, REFRESH_TOKEN_LIFETIME=3600):
        issued = sessions.start(user, service=PASSWORD, now=now)
    assert issued.refresh_expires_at == issued.session.expires_at == now + seconds(600)


# -- rotate --------------------------------------------------------------------------------


def test_rotate_returns_a_new_token_in_the_same_session(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    later = now + seconds(60)

    rotated = sessions.rotate(issued.refresh_token, service=PASSWORD, now=later)

    assert rotated.refresh_token != issued.refresh_token
    assert rotated.session.pk == issued.session.pk
    assert rotated.refresh_expires_at == later + seconds(token_settings.REFRESH_TOKEN_LIFETIME)
    old = RefreshToken.objects.get(token_hash=digest(issued.refresh_token))
    assert old.used_at == later
    new = RefreshToken.objects.get(token_hash=digest(rotated.refresh_token))
    assert new.used_at is None
    assert list(live_members(issued.session)) == [new]
    assert sessions.rotate(rotated.refresh_token, service=PASSWORD, now=later + seconds(60))


def test_rotate_reads_and_locks_the_family_in_one_query_joining_only_what_it_needs(user, now):
    """A password session's rotation joins its user alone; an API-key session's also joins
    the key and the user's metadata, which its tokens read: one SELECT either way."""
    from django_tokens import api_keys

    key = api_keys.issue(user, name="rotation").api_key
    for service, api_key, joined in (
        (PASSWORD, None, False),
        (Session.Service.API_KEY, key, True),
    ):
        first = sessions.start(user, service=service, api_key=api_key, now=now)
        with CaptureQueriesContext(connection) as captured:
            refreshed = sessions.rotate(
                first.refresh_token,
                service=service,
                now=now + seconds(1),
                then=lambda r: (r.session.api_key, r.session.user.pk),
            )
        assert refreshed == (api_key, user.pk)
        selects = [q["sql"] for q in captured if q["sql"].startswith("SELECT")]
        assert len(selects) == 1, selects
        assert ("django_tokens_apikey" in selects[0]) is joined
        assert ("django_tokens_usermetadata" in selects[0]) is joined


def test_reuse_after_the_grace_window_revokes_the_session(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    rotated = sessions.rotate(issued.refresh_token, service=PASSWORD, now=now)
    reuse_at = now + seconds(token_settings.REFRESH_REUSE_GRACE + 1)
    sid = str(issued.session.pk)
    assert not sessions.is_revoked({"sid": sid})

    with pytest.raises(RefreshTokenReused):
        sessions.rotate(issued.refresh_token, service=PASSWORD, now=reuse_at)

    session = Session.objects.get(pk=sid)
    assert session.revoked_at == reuse_at
    assert session.revoke_reason == "refresh_token_reused"
    assert sessions.is_revoked({"sid": sid})
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(rotated.refresh_token, service=PASSWORD, now=reuse_at + seconds(1))


def test_retry_inside_the_grace_window_leaves_one_live_member(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    first = sessions.rotate(issued.refresh_token, service=PASSWORD, now=now + seconds(1))
    retry_at = now + seconds(1 + token_settings.REFRESH_REUSE_GRACE)

    retried = sessions.rotate(issued.refresh_token, service=PASSWORD, now=retry_at)

    assert retried.session.pk == issued.session.pk
    assert retried.refresh_token not in (first.refresh_token, issued.refresh_token)
    live = list(live_members(issued.session))
    assert len(live) == 1
    assert live[0].token_hash == digest(retried.refresh_token)
    session = Session.objects.get(pk=issued.session.pk)
    assert session.revoked_at is None
    assert not sessions.is_revoked({"sid": str(session.pk)})
    assert sessions.rotate(retried.refresh_token, service=PASSWORD, now=retry_at + seconds(1))


def test_grace_window_follows_the_setting(user, now):
    with tokens_settings(REFRESH_REUSE_GRACE=0):
        issued = sessions.start(user, service=PASSWORD, now=now)
        sessions.rotate(issued.refresh_token, service=PASSWORD, now=now)
        with pytest.raises(RefreshTokenReused):
            sessions.rotate(issued.refresh_token, service=PASSWORD, now=now + seconds(1))


def test_expired_refresh_token_is_invalid(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    with pytest.raises(InvalidRefreshToken) as excinfo:
        sessions.rotate(issued.refresh_token, service=PASSWORD, now=issued.refresh_expires_at)
    assert type(excinfo.value) is InvalidRefreshToken
    assert Session.objects.get(pk=issued.session.pk).revoked_at is None


def test_expired_session_is_invalid(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    Session.objects.filter(pk=issued.session.pk).update(expires_at=now + seconds(60))
    assert issued.refresh_expires_at > now + seconds(60)
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(issued.refresh_token, service=PASSWORD, now=now + seconds(61))


def test_revoked_session_is_invalid_and_keeps_its_reason(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    rotated = sessions.rotate(issued.refresh_token, service=PASSWORD, now=now)
    assert sessions.revoke_session(issued.session.pk, reason="logout", now=now + seconds(5))

    for token in (rotated.refresh_token, issued.refresh_token):
        with pytest.raises(InvalidRefreshToken) as excinfo:
            sessions.rotate(token, service=PASSWORD, now=now + seconds(3600))
        assert type(excinfo.value) is InvalidRefreshToken
    session = Session.objects.get(pk=issued.session.pk)
    assert (session.revoked_at, session.revoke_reason) == (now + seconds(5), "logout")


def test_inactive_user_is_invalid(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    user.is_active = False
    user.save(update_fields=["is_active"])
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(issued.refresh_token, service=PASSWORD, now=now)


def test_token_of_another_service_is_invalid_and_not_consumed(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(issued.refresh_token, service=Session.Service.API_KEY, now=now)
    assert RefreshToken.objects.get(token_hash=digest(issued.refresh_token)).used_at is None
    assert sessions.rotate(issued.refresh_token, service=PASSWORD, now=now)


@pytest.mark.parametrize("token", ["", "unknown-token", "x" * 513, None, 42], ids=repr)
def test_unknown_or_malformed_token_is_invalid(user, now, token):
    sessions.start(user, service=PASSWORD, now=now)
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(token, service=PASSWORD, now=now)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_of_one_token_leave_one_live_member(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    clients = 4
    barrier = threading.Barrier(clients)
    results, errors = [], []

    def refresh():
        try:
            barrier.wait()
            results.append(sessions.rotate(issued.refresh_token, service=PASSWORD, now=now))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len({result.refresh_token for result in results}) == clients
    live = list(live_members(issued.session))
    assert len(live) == 1
    assert live[0].token_hash in {digest(result.refresh_token) for result in results}
    assert Session.objects.get(pk=issued.session.pk).revoked_at is None


# -- revocation ----------------------------------------------------------------------------


def _revoke_n_sessions(user, n, now):
    sessions_created = Session.objects.bulk_create(
        Session(user=user, service=PASSWORD, created_at=now, expires_at=now + seconds(3600))
        for _ in range(n)
    )
    ids = [s.pk for s in sessions_created]
    with CaptureQueriesContext(connection) as queries:
        revoked = sessions.revoke_sessions(Session.objects.filter(pk__in=ids), now=now)
    assert revoked == n
    assert Session.objects.filter(pk__in=ids, revoked_at=now).count() == n
    assert all(sessions.is_revoked({"sid": str(pk)}) for pk in ids)
    return len(queries)


def test_revoke_sessions_issues_a_constant_number_of_queries(user, now):
    few = _revoke_n_sessions(user, 3, now)
    many = _revoke_n_sessions(user, 30, now)
    assert few == many
    # The ids, the UPDATE, the audit trail's read and its one INSERT, inside a transaction.
    assert few <= 6
    assert AuditEvent.objects.filter(action="session_revoked").count() == 33


def test_revoke_sessions_leaves_already_revoked_sessions_alone(user, now):
    first = sessions.start(user, service=PASSWORD, now=now)
    second = sessions.start(user, service=PASSWORD, now=now)
    sessions.revoke_session(first.session.pk, reason="logout", now=now)

    count = sessions.revoke_sessions(Session.objects.all(), reason="admin", now=now + seconds(9))

    assert count == 1
    assert Session.objects.get(pk=first.session.pk).revoke_reason == "logout"
    assert Session.objects.get(pk=second.session.pk).revoke_reason == "admin"


def test_revoke_user_revokes_every_session_of_that_user_only(user, django_user_model, now):
    other = django_user_model.objects.create_user(username="bob", password="bob-password")
    mine = [sessions.start(user, service=PASSWORD, now=now) for _ in range(2)]
    theirs = sessions.start(other, service=PASSWORD, now=now)

    assert sessions.revoke_user(user, now=now) == 2

    for issued in mine:
        session = Session.objects.get(pk=issued.session.pk)
        assert (session.revoked_at, session.revoke_reason) == (now, "user_revoked")
        assert sessions.is_revoked({"sid": str(session.pk)})
        with pytest.raises(InvalidRefreshToken):
            sessions.rotate(issued.refresh_token, service=PASSWORD, now=now)
    assert Session.objects.get(pk=theirs.session.pk).revoked_at is None
    assert not sessions.is_revoked({"sid": str(theirs.session.pk)})
    assert sessions.rotate(theirs.refresh_token, service=PASSWORD, now=now)
    assert sessions.revoke_user(user, now=now) == 0


def test_is_revoked_without_a_mark_is_false(user, now):
    issued = sessions.start(user, service=PASSWORD, now=now)
    assert not sessions.is_revoked({"sid": str(issued.session.pk)})
    assert not sessions.is_revoked({"sid": "00000000-0000-0000-0000-000000000000"})
    assert not sessions.is_revoked({})
    assert not sessions.is_revoked({"sid": ""})


def test_revocation_mark_lives_in_the_configured_cache(user, now):
    caches = {
        **settings.CACHES,
        "marks": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "revocation-marks",
        },
    }
    issued = sessions.start(user, service=PASSWORD, now=now)
    sid = str(issued.session.pk)
    with override_settings(CACHES=caches), tokens_settings(CACHE_ALIAS="marks"):
        sessions.revoke_session(sid, now=now)
        assert sessions.is_revoked({"sid": sid})
    assert not sessions.is_revoked({"sid": sid})


# -- an unreachable cache ------------------------------------------------------------------


def test_is_revoked_is_false_when_the_cache_is_unreachable(user, now, unreachable_cache):
    issued = sessions.start(user, service=PASSWORD, now=now)
    assert sessions.is_revoked({"sid": str(issued.session.pk)}) is False


def test_revocation_still_stops_refresh_when_the_cache_is_unreachable(user, now, unreachable_cache):
    issued = sessions.start(user, service=PASSWORD, now=now)
    assert sessions.revoke_user(user, now=now) == 1
    assert Session.objects.get(pk=issued.session.pk).revoked_at == now
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(issued.refresh_token, service=PASSWORD, now=now)


def test_reuse_is_detected_when_the_cache_is_unreachable(user, now, unreachable_cache):
    issued = sessions.start(user, service=PASSWORD, now=now)
    sessions.rotate(issued.refresh_token, service=PASSWORD, now=now)
    with pytest.raises(RefreshTokenReused):
        sessions.rotate(issued.refresh_token, service=PASSWORD, now=now + seconds(3600))
    assert Session.objects.get(pk=issued.session.pk).revoke_reason == "refresh_token_reused"
