import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.cache import caches
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tokens import jws, keystore
from django_tokens.conf import max_token_lifetime, token_settings
from django_tokens.crypto import DecryptionError, SecretBox, secret_box
from django_tokens.models import SigningKey
from tests.keys import FERNET_KEY_FOREIGN

pytestmark = pytest.mark.django_db

REPO_ROOT = Path(__file__).resolve().parent.parent
ACTIVE, NEXT, RETIRING, RETIRED = (
    SigningKey.State.ACTIVE,
    SigningKey.State.NEXT,
    SigningKey.State.RETIRING,
    SigningKey.State.RETIRED,
)


def tokens_settings(**overrides):
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


def shared_version():
    return caches[token_settings.CACHE_ALIAS].get(keystore.VERSION_CACHE_KEY)


def sign_with(key: keystore.LoadedKey, **claims) -> str:
    now = int(time.time())
    return jws.sign(
        {"iat": now, "exp": now + 60, **claims}, key.private_key, key.algorithm, kid=key.kid
    )


def verify_by_kid(token: str) -> dict:
    key = keystore.verification_key(jws.unverified_header(token)["kid"])
    assert key is not None
    return jws.verify(token, key.public_key, key.algorithm)


def rotate_elsewhere(*, bump_version: bool) -> SigningKey:
    """What keystore.rotate() does in another process: it changes rows this process has
    loaded, and (unless that fails) publishes a new version stamp in the shared cache."""
    with transaction.atomic():
        old_active = SigningKey.objects.get(state=ACTIVE)
        promoted = SigningKey.objects.get(state=NEXT)
        old_active.state = RETIRING
        old_active.retire_after = timezone.now() + timedelta(seconds=max_token_lifetime())
        old_active.save()
        promoted.state = ACTIVE
        promoted.save()
        keystore.create_key(promoted.algorithm, NEXT)
    if bump_version:
        caches[token_settings.CACHE_ALIAS].set(
            keystore.VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None
        )
    return promoted


# -- creation and storage ------------------------------------------------------------------


def test_first_use_creates_an_active_and_a_next_key():
    assert not SigningKey.objects.exists()
    key = keystore.signing_key()

    active = SigningKey.objects.get(state=ACTIVE)
    next_key = SigningKey.objects.get(state=NEXT)
    assert SigningKey.objects.count() == 2
    assert key.kid == active.kid != next_key.kid
    assert key.algorithm == active.algorithm == next_key.algorithm == "RS256"
    assert active.activated_at is not None
    assert next_key.activated_at is None
    assert verify_by_kid(sign_with(key, sub="1"))["sub"] == "1"


@pytest.mark.parametrize("algorithm", ["RS512", "ES256", "EdDSA"])
def test_first_keys_use_the_configured_algorithm(algorithm):
    with tokens_settings(SIGNING_ALGORITHM=algorithm):
        key = keystore.signing_key()
        assert key.algorithm == algorithm
        assert set(SigningKey.objects.values_list("algorithm", flat=True)) == {algorithm}
        assert verify_by_kid(sign_with(key, sub="1"))["sub"] == "1"


def test_private_key_is_stored_encrypted():
    keystore.signing_key()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {SigningKey._meta.db_table}")
        rows = cursor.fetchall()
    assert len(rows) == 2

    for key in SigningKey.objects.all():
        pem = secret_box().decrypt(key.encrypted_private_key).decode()
        assert pem.startswith("-----BEGIN PRIVATE KEY-----")
        pem_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        stored = " ".join(str(value) for row in rows for value in row)
        assert "PRIVATE KEY" not in stored
        assert not any(line in stored for line in pem_lines)
        assert "".join(pem_lines) not in stored.replace("\n", "")
        with pytest.raises(DecryptionError):
            SecretBox([FERNET_KEY_FOREIGN]).decrypt(key.encrypted_private_key)
        assert "d" not in key.public_jwk


# -- the published JWK Set -----------------------------------------------------------------


def test_jwks_lists_the_active_and_next_keys_with_kid_alg_use():
    document = keystore.jwks()

    expected = set(
        SigningKey.objects.filter(state__in=[ACTIVE, NEXT]).values_list("kid", flat=True)
    )
    assert {jwk["kid"] for jwk in document["keys"]} == expected
    assert len(document["keys"]) == 2
    for jwk in document["keys"]:
        assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}
        assert jwk["alg"] == "RS256"
        assert jwk["use"] == "sig"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_kid_is_the_rfc_7638_thumbprint(algorithm):
    with tokens_settings(SIGNING_ALGORITHM=algorithm):
        document = keystore.jwks()
    assert len(document["keys"]) == 2
    for jwk in document["keys"]:
        assert jwk["kid"] == jws.jwk_thumbprint(jwk)
        public_key = jws.public_key_from_jwk(jwk)
        assert jws.jwk_thumbprint(jws.public_jwk(public_key, algorithm)) == jwk["kid"]


# -- rotation ------------------------------------------------------------------------------


def test_rotate_promotes_next_and_retires_the_active_key():
    first = keystore.signing_key()
    token = sign_with(first, sub="before")
    pre_published = SigningKey.objects.get(state=NEXT)
    now = timezone.now()

    rotation = keystore.rotate(now=now)

    assert rotation.active.kid == pre_published.kid
    assert rotation.retiring.kid == first.kid
    assert rotation.next.kid not in (first.kid, pre_published.kid)
    assert SigningKey.objects.filter(state=ACTIVE).count() == 1
    assert SigningKey.objects.filter(state=NEXT).count() == 1
    assert SigningKey.objects.get(state=ACTIVE).kid == pre_published.kid
    assert SigningKey.objects.get(state=NEXT).kid == rotation.next.kid
    retiring = SigningKey.objects.get(kid=first.kid)
    assert retiring.state == RETIRING
    assert retiring.retiring_at == now
    assert retiring.retire_after == now + timedelta(seconds=max_token_lifetime())
    assert max_token_lifetime() >= token_settings.ACCESS_TOKEN_LIFETIME + token_settings.LEEWAY

    assert keystore.signing_key().kid == pre_published.kid
    assert {jwk["kid"] for jwk in keystore.jwks()["keys"]} == {
        first.kid,
        pre_published.kid,
        rotation.next.kid,
    }
    assert verify_by_kid(token)["sub"] == "before"
    assert verify_by_kid(sign_with(keystore.signing_key(), sub="after"))["sub"] == "after"


def test_rotate_on_an_empty_keystore_creates_both_keys():
    rotation = keystore.rotate()
    assert rotation.retiring is None
    assert SigningKey.objects.get(state=ACTIVE).kid == rotation.active.kid
    assert SigningKey.objects.get(state=NEXT).kid == rotation.next.kid
    assert keystore.signing_key().kid == rotation.active.kid


def test_rotate_to_another_algorithm_activates_a_new_key_of_it():
    first = keystore.signing_key()
    pre_published = SigningKey.objects.get(state=NEXT)
    assert pre_published.algorithm == "RS256"

    rotation = keystore.rotate(algorithm="ES256")

    assert rotation.active.algorithm == "ES256"
    assert rotation.active.kid not in (first.kid, pre_published.kid)
    assert rotation.next.algorithm == "ES256"
    assert SigningKey.objects.get(kid=pre_published.kid).state == RETIRED
    assert SigningKey.objects.get(kid=first.kid).state == RETIRING
    key = keystore.signing_key()
    assert (key.kid, key.algorithm) == (rotation.active.kid, "ES256")
    published = {jwk["kid"]: jwk["alg"] for jwk in keystore.jwks()["keys"]}
    assert published == {
        first.kid: "RS256",
        rotation.active.kid: "ES256",
        rotation.next.kid: "ES256",
    }
    assert verify_by_kid(sign_with(key, sub="1"))["sub"] == "1"


def test_rotate_refuses_an_unsupported_algorithm():
    keystore.signing_key()
    before = set(SigningKey.objects.values_list("kid", "state"))
    with pytest.raises(keystore.KeystoreError, match="XYZ"):
        keystore.rotate(algorithm="XYZ")
    assert set(SigningKey.objects.values_list("kid", "state")) == before


def test_rotate_publishes_a_new_version_stamp(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        keystore.signing_key()  # first keys: their stamp is published once they are committed
    before = shared_version()
    assert before is not None
    with django_capture_on_commit_callbacks(execute=True):
        keystore.rotate()
    assert shared_version() not in (None, before)


def test_retiring_key_past_retire_after_drops_out_and_is_retired():
    t0 = timezone.now()
    with tokens_settings(KEYSTORE_CHECK_INTERVAL=0):
        old = keystore.signing_key()
        keystore.rotate(now=t0)
        assert old.kid in {jwk["kid"] for jwk in keystore.jwks()["keys"]}
        assert keystore.verification_key(old.kid) is not None

        after_expiry = t0 + timedelta(seconds=max_token_lifetime() + 1)
        with time_machine.travel(after_expiry, tick=False):
            assert old.kid not in {jwk["kid"] for jwk in keystore.jwks()["keys"]}
            assert len(keystore.jwks()["keys"]) == 2
            assert keystore.verification_key(old.kid) is None

            rotation = keystore.rotate(now=after_expiry)
    assert rotation.retired == 1
    retired = SigningKey.objects.get(kid=old.kid)
    assert retired.state == RETIRED
    assert retired.retired_at == after_expiry


def test_a_process_never_loads_a_key_past_retire_after():
    old = keystore.signing_key()
    keystore.rotate(now=timezone.now() - timedelta(seconds=max_token_lifetime() + 1))
    assert SigningKey.objects.get(kid=old.kid).state == RETIRING
    assert old.kid not in {jwk["kid"] for jwk in keystore.jwks()["keys"]}
    assert keystore.verification_key(old.kid) is None


# -- the in-process cache ------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0, 3600])
def test_signing_with_a_loaded_key_does_not_query_the_database(django_assert_num_queries, interval):
    with tokens_settings(KEYSTORE_CHECK_INTERVAL=interval):
        warm = keystore.signing_key()
        keystore.jwks()
        with django_assert_num_queries(0):
            for n in range(20):
                key = keystore.signing_key()
                token = sign_with(key, sub=str(n))
                assert verify_by_kid(token)["sub"] == str(n)
                assert len(keystore.jwks()["keys"]) == 2
        assert key.kid == warm.kid


def test_rotation_by_another_process_is_noticed_after_the_check_interval():
    with tokens_settings(KEYSTORE_CHECK_INTERVAL=0):
        first = keystore.signing_key()
        promoted = rotate_elsewhere(bump_version=True)

        key = keystore.signing_key()
        assert key.kid == promoted.kid != first.kid
        assert {jwk["kid"] for jwk in keystore.jwks()["keys"]} == set(
            SigningKey.objects.filter(state__in=[ACTIVE, NEXT, RETIRING]).values_list(
                "kid", flat=True
            )
        )
        assert verify_by_kid(sign_with(key, sub="1"))["sub"] == "1"


def test_within_the_check_interval_the_loaded_key_keeps_signing(django_assert_num_queries):
    with tokens_settings(KEYSTORE_CHECK_INTERVAL=3600):
        first = keystore.signing_key()
        promoted = rotate_elsewhere(bump_version=True)
        with django_assert_num_queries(0):
            assert keystore.signing_key().kid == first.kid
        assert promoted.kid in {jwk["kid"] for jwk in keystore.jwks()["keys"]}


def test_an_unknown_kid_reloads_the_keys_without_a_version_stamp():
    with tokens_settings(KEYSTORE_CHECK_INTERVAL=3600):
        keystore.signing_key()
        promoted = rotate_elsewhere(bump_version=False)
        key = keystore.verification_key(promoted.kid)
        assert key is not None
        assert key.kid == promoted.kid


def test_unknown_kid_reload_is_rate_limited():
    with tokens_settings(KEYSTORE_CHECK_INTERVAL=3600):
        keystore.signing_key()
        with CaptureQueriesContext(connection) as first:
            assert keystore.verification_key("made-up-0") is None
        assert len(first) >= 1

        with CaptureQueriesContext(connection) as flood:
            for n in range(1, 100):
                assert keystore.verification_key(f"made-up-{n}") is None
        assert len(flood) == 0

        time.sleep(keystore.UNKNOWN_KID_RELOAD_INTERVAL + 0.05)
        with CaptureQueriesContext(connection) as later:
            assert keystore.verification_key("made-up-again") is None
            assert keystore.verification_key("made-up-once-more") is None
        assert len(later) == len(first)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_rotation_in_another_os_process_is_noticed():
    with tokens_settings(KEYSTORE_CHECK_INTERVAL=0):
        first = keystore.signing_key()
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": (
                f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
            ),
        }
        script = (
            "import django; django.setup(); from django_tokens import keystore; "
            "print(keystore.rotate().active.kid)"
        )
        completed = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        promoted_kid = completed.stdout.strip().splitlines()[-1]

        assert promoted_kid != first.kid
        assert keystore.signing_key().kid == promoted_kid
        assert keystore.verification_key(first.kid) is not None


# -- creating keys safely ------------------------------------------------------------------


def test_ensure_keys_twice_creates_nothing_more():
    keystore.ensure_keys()
    rows = set(SigningKey.objects.values_list("kid", "state"))
    version = shared_version()
    assert len(rows) == 2

    keystore.ensure_keys()

    assert set(SigningKey.objects.values_list("kid", "state")) == rows
    assert shared_version() == version


@pytest.mark.parametrize("state", [ACTIVE, NEXT])
def test_database_refuses_a_second_active_or_next_key(state):
    keystore.ensure_keys()
    with pytest.raises(IntegrityError), transaction.atomic():
        keystore.create_key("RS256", state)
    assert SigningKey.objects.filter(state=state).count() == 1


def test_several_retiring_keys_may_coexist():
    keystore.ensure_keys()
    keystore.rotate()
    keystore.rotate()
    assert SigningKey.objects.filter(state=RETIRING).count() == 2
    assert len(keystore.jwks()["keys"]) == 4


def test_first_keys_publish_their_stamp_only_when_committed(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        keystore.signing_key()
    assert shared_version() is None
    for callback in callbacks:
        callback()
    assert shared_version() is not None


# -- retiring a key early ------------------------------------------------------------------


def _token_of(user, *, at=None):
    """A session opened ``at`` (default now), with an access token signed by the key active
    in this process."""
    from django_tokens import sessions
    from django_tokens.tokens import issue_access_token

    refreshed = sessions.start(user, service="password", now=at)
    return issue_access_token(
        user,
        session_id=str(refreshed.session.pk),
        scopes=[],
        service="password",
        issuer="https://issuer.example",
    ).token


def _verifies(token):
    keystore.reset()
    try:
        keystore.verify(token, types={"at+jwt"}, audience=None, issuer=None, require=("exp",))
    except jws.InvalidSignedToken:
        return False
    return True


def test_a_key_no_valid_token_needs_retires_without_force():
    first = keystore.signing_key().kid
    keystore.rotate()

    impact = keystore.retire(first)

    assert impact.breaks_nothing
    retired = SigningKey.objects.get(kid=first)
    assert retired.state == RETIRED
    assert retired.retired_at is not None
    assert first not in {key["kid"] for key in keystore.jwks()["keys"]}


def test_a_key_valid_tokens_need_is_refused_then_retired_by_force(user):
    first = keystore.signing_key().kid
    token = _token_of(user)
    rotated_at = timezone.now()
    keystore.rotate(now=rotated_at)
    after = _token_of(user, at=rotated_at + timedelta(seconds=60))

    with pytest.raises(keystore.KeyStillNeeded) as refused:
        keystore.retire(first)

    assert refused.value.impact.sessions == 1
    assert "1 session(s) and 0 OAuth 2.0 token(s)" in str(refused.value)
    assert SigningKey.objects.get(kid=first).state == RETIRING
    assert _verifies(token)

    impact = keystore.retire(first, force=True)

    assert (impact.sessions, impact.breaks_nothing) == (1, False)
    assert SigningKey.objects.get(kid=first).state == RETIRED
    assert not _verifies(token)
    assert _verifies(after)


def test_only_tokens_signed_while_the_key_was_active_count(user):
    t0 = timezone.now()
    first = keystore.signing_key().kid
    _token_of(user, at=t0 + timedelta(seconds=1))
    keystore.rotate(now=t0 + timedelta(seconds=30))
    second = keystore.signing_key().kid
    _token_of(user, at=t0 + timedelta(seconds=60))  # signed by the new key only
    keystore.rotate(now=t0 + timedelta(seconds=120))
    later = t0 + timedelta(seconds=130)

    def needing(kid):
        key = SigningKey.objects.get(kid=kid)
        return keystore.retirement_impact(key, now=later).sessions

    assert (needing(first), needing(second)) == (1, 1)


def test_the_session_that_created_the_first_keys_holds_them(client, user):
    """On an empty keystore the first sign-in creates the keys: its session began after."""
    response = client.post(
        "/api/token",
        {"username": "alice", "password": "alice-password"},
        content_type="application/json",
    )
    assert response.status_code == 200
    first = SigningKey.objects.get(state=ACTIVE)
    keystore.rotate()

    impact = keystore.retirement_impact(SigningKey.objects.get(pk=first.pk))

    assert impact.sessions == 1
    with pytest.raises(keystore.KeyStillNeeded):
        keystore.retire(first.kid)


def test_a_process_slow_to_see_a_rotation_is_allowed_for(user):
    """For ``KEYSTORE_CHECK_INTERVAL`` after a rotation a process may still sign with the old
    key: tokens of that span count as the old key's too."""
    t0 = timezone.now()
    first = keystore.signing_key().kid
    keystore.rotate(now=t0)
    interval = token_settings.KEYSTORE_CHECK_INTERVAL
    _token_of(user, at=t0 + timedelta(seconds=interval - 1))
    key = SigningKey.objects.get(kid=first)

    assert keystore.retirement_impact(key, now=t0 + timedelta(seconds=30)).sessions == 1
    _token_of(user, at=t0 + timedelta(seconds=interval + 1))
    assert keystore.retirement_impact(key, now=t0 + timedelta(seconds=30)).sessions == 1


def test_revoked_and_expired_sessions_do_not_hold_a_key(user):
    from django_tokens import sessions

    first = keystore.signing_key().kid
    _token_of(user)
    sessions.revoke_user(user)
    keystore.rotate()

    assert keystore.retire(first).breaks_nothing


def test_live_oauth2_tokens_hold_the_key(user):
    from oauth2_provider.models import AccessToken, Application

    first = keystore.signing_key().kid
    application = Application.objects.create(
        name="svc",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    AccessToken.objects.create(
        application=application,
        token="t" * 40,
        expires=timezone.now() + timedelta(hours=1),
        scope="read",
    )
    keystore.rotate()

    impact = keystore.retirement_impact(SigningKey.objects.get(kid=first))

    assert (impact.sessions, impact.oauth2_tokens) == (0, 1)
    with pytest.raises(keystore.KeyStillNeeded):
        keystore.retire(first)


@pytest.mark.parametrize("which", ["active", "next", "retired", "unknown"])
def test_only_a_retiring_key_can_be_retired(which):
    first = keystore.signing_key().kid
    keystore.rotate()
    keystore.retire(first)
    kid = {
        "active": SigningKey.objects.get(state=ACTIVE).kid,
        "next": SigningKey.objects.get(state=NEXT).kid,
        "retired": first,
        "unknown": "no-such-kid",
    }[which]
    before = list(SigningKey.objects.values_list("kid", "state"))

    with pytest.raises(keystore.KeystoreError) as refused:
        keystore.retire(kid, force=True)

    assert not isinstance(refused.value, keystore.KeyStillNeeded)
    assert list(SigningKey.objects.values_list("kid", "state")) == before


# -- tokens verified before ----------------------------------------------------------------


def _verify_access(token, *, audience=None, issuer=None):
    return keystore.verify(
        token, types={"at+jwt"}, audience=audience, issuer=issuer, require=("exp", "iat")
    )


def _signed_access(key: keystore.LoadedKey, **claims) -> str:
    now = int(time.time())
    return jws.sign(
        {"iat": now, "exp": now + 60, "aud": "api-a", **claims},
        key.private_key,
        key.algorithm,
        kid=key.kid,
        typ="at+jwt",
    )


def test_a_token_verified_before_is_answered_without_checking_its_signature_again():
    token = _signed_access(keystore.signing_key(), sub="1")
    first = _verify_access(token, audience="api-a")
    calls = []
    checked = jws.verify

    def counting(*args, **kwargs):
        calls.append(args[0])
        return checked(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jws, "verify", counting)
        again = _verify_access(token, audience="api-a")
        other = _signed_access(keystore.signing_key(), sub="2")
        _verify_access(other, audience="api-a")

    assert again == first
    assert calls == [other]


def test_a_token_verified_before_is_checked_anew_against_other_expectations():
    token = _signed_access(keystore.signing_key(), sub="1")
    _verify_access(token, audience="api-a")

    with pytest.raises(jws.InvalidSignedToken):
        _verify_access(token, audience="api-b")
    with pytest.raises(jws.InvalidSignedToken):
        _verify_access(token, audience="api-a", issuer="https://issuer.example")
    with pytest.raises(jws.InvalidSignedToken):
        keystore.verify(token, types={"JWT"}, audience="api-a", issuer=None, require=("exp",))


def test_a_token_verified_before_expires_on_time():
    token = _signed_access(keystore.signing_key(), sub="1")
    expires = jws.unverified_claims(token)["exp"]
    _verify_access(token, audience="api-a")
    leeway = token_settings.LEEWAY

    with time_machine.travel(expires + leeway - 1, tick=False):
        assert _verify_access(token, audience="api-a")[1]["sub"] == "1"
    with (
        time_machine.travel(expires + leeway + 1, tick=False),
        pytest.raises(jws.ExpiredSignedToken),
    ):
        _verify_access(token, audience="api-a")


def test_a_token_verified_before_is_refused_once_its_key_is_retired_elsewhere(user):
    with tokens_settings(KEYSTORE_CHECK_INTERVAL=0):
        first = keystore.signing_key()
        token = _signed_access(first, sub=str(user.pk))
        _verify_access(token, audience="api-a")
        rotate_elsewhere(bump_version=True)
        SigningKey.objects.filter(kid=first.kid).update(
            state=RETIRED, retire_after=None, retired_at=timezone.now()
        )
        caches[token_settings.CACHE_ALIAS].set(
            keystore.VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None
        )

        with pytest.raises(jws.InvalidSignedToken):
            _verify_access(token, audience="api-a")


def test_the_remembered_tokens_are_bounded(monkeypatch):
    monkeypatch.setattr(keystore, "VERIFIED_TOKENS_REMEMBERED", 3)
    key = keystore.signing_key()
    for number in range(10):
        _verify_access(_signed_access(key, sub=str(number)), audience="api-a")

    assert 1 <= len(keystore._current().verified) <= 3
