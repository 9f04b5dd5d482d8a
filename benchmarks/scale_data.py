"""Bulk data for the database-size section of ``benchmarks/run.py`` (PostgreSQL only).

    DJANGO_SETTINGS_MODULE=benchmarks.ours_settings python benchmarks/scale_data.py reset
    DJANGO_SETTINGS_MODULE=benchmarks.ours_settings python benchmarks/scale_data.py fill 100000
    DJANGO_SETTINGS_MODULE=benchmarks.ours_settings python benchmarks/scale_data.py cleanup

``reset`` deletes the sessions (and their refresh tokens) of the benchmark's users — the
benchmark user's, left by the other rows and by earlier runs, and the filler users' — and the
filler's audit entries, so the count starts near zero; rows of any other user are left alone
and counted. ``fill N`` adds filler sessions until the session table holds ``N`` rows, each
with one refresh token and the audit entry of its issuance, in bulk SQL (``INSERT ... SELECT
... FROM generate_series``) through Django's connection. ``cleanup`` deletes what is left of
the filler (its live sessions and every audit entry).

The filler is what a database that has not been purged for a while holds, half and half:
logins of ``FILLER_USERS`` users made in the last 13 days, live (session 30 days, refresh
token 14 days), and logins made 31 to 45 days ago, whose session and refresh token have
expired — what ``purge_tokens`` removes, interleaved with the live rows. Every audit entry is
inside the retention. Issuance and refresh never read another session's rows, so only the
size of the tables and their indexes reaches them. During a fill the tables' secondary
(non-constraint) indexes are dropped and rebuilt in the same transaction — a bulk load's usual
trick, which leaves them freshly packed — and, for a superuser, foreign-key triggers are off
for the transaction (``session_replication_role = replica``): every inserted row references a
row inserted with it or an existing user. The deletions use the same setting, and delete the
refresh tokens before their sessions.

The last line of the output is ``BENCH-JSON {...}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FILLER_PREFIX = "bench-fill-"
FILLER_USERS = 10_000
#: Rows per INSERT statement (one transaction holds all of a fill).
CHUNK = 250_000
TABLES = ("django_tokens_session", "django_tokens_refreshtoken", "django_tokens_auditevent")


def _counts(cursor: Any) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (a fixed table name)
        counts[table.removeprefix("django_tokens_")] = cursor.fetchone()[0]
    return counts


def _without_triggers(cursor: Any) -> None:
    """Foreign-key triggers off until the transaction ends, when the role may do that."""
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if cursor.fetchone()[0]:
        cursor.execute("SET LOCAL session_replication_role = replica")


def remove(*, benchmark_user: bool) -> dict[str, Any]:
    """Deletes the filler users' sessions, refresh tokens and audit entries, and with
    ``benchmark_user`` the benchmark user's sessions and refresh tokens too — then vacuums
    the tables, before a section and after it: a million dead rows left to autovacuum slow
    whatever runs next (a following benchmark run saw its issuance rows stall)."""
    from django.db import connection, transaction

    from benchmarks.setup_data import USERNAME

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        _without_triggers(cursor)
        cursor.execute(
            "SELECT id FROM auth_user WHERE username LIKE %s OR username = %s",
            [FILLER_PREFIX + "%", USERNAME if benchmark_user else ""],
        )
        ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "DELETE FROM django_tokens_refreshtoken AS r USING django_tokens_session AS s "
            "WHERE r.session_id = s.id AND s.user_id = ANY(%s)",
            [ids],
        )
        cursor.execute("DELETE FROM django_tokens_session WHERE user_id = ANY(%s)", [ids])
        sessions = cursor.rowcount
        cursor.execute(
            "DELETE FROM django_tokens_auditevent WHERE username LIKE %s", [FILLER_PREFIX + "%"]
        )
        audit = cursor.rowcount
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
        counts = _counts(cursor)
    return {
        "sessions_removed": sessions,
        "audit_removed": audit,
        "counts": counts,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _secondary_indexes(cursor: Any, table: str) -> list[tuple[str, str]]:
    """The table's indexes that back no constraint (primary key, unique): name, definition."""
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = %s AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    return list(cursor.fetchall())


FILL_USERS_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT '!', false, %(prefix)s || lpad(g::text, 5, '0'), '', '', '', false, true, now()
FROM generate_series(0, %(users)s - 1) AS g
ON CONFLICT (username) DO NOTHING
"""

FILL_SQL = """
WITH users AS (
    SELECT array_agg(id ORDER BY id) AS ids FROM auth_user WHERE username LIKE %(pattern)s
), rows AS (
    SELECT gen_random_uuid() AS id,
           CASE WHEN g %% 2 = 0
                THEN now() - interval '31 days' - random() * interval '14 days'
                ELSE now() - random() * interval '13 days'
           END AS created_at,
           users.ids[1 + g %% array_length(users.ids, 1)] AS user_id
    FROM generate_series(1, %(count)s) AS g, users
), sessions AS (
    INSERT INTO django_tokens_session (id, service, scope, created_at, expires_at,
                                       revoked_at, revoke_reason, user_id, api_key_id)
    SELECT id, 'password', 'profile email', created_at, created_at + interval '30 days',
           NULL, '', user_id, NULL
    FROM rows
    RETURNING id, created_at, user_id
), refresh AS (
    INSERT INTO django_tokens_refreshtoken (token_hash, created_at, expires_at, used_at,
                                            session_id)
    SELECT encode(sha256(uuid_send(id)), 'hex'), created_at, created_at + interval '14 days',
           NULL, id
    FROM sessions
)
INSERT INTO django_tokens_auditevent (created_at, action, actor, ip, service, user_id_value,
                                      username, session_id, api_key_id, client_id,
                                      signing_kid, detail)
SELECT s.created_at, 'token_issued', u.username, '127.0.0.1', 'password', s.user_id::text,
       u.username, s.id, '', '', %(kid)s, '{"scope": "profile email"}'::jsonb
FROM sessions AS s JOIN auth_user AS u ON u.id = s.user_id
"""


def fill(target: int) -> dict[str, Any]:
    from django.db import connection, transaction

    from django_tokens import keystore

    kid = keystore.signing_key().kid
    started = time.perf_counter()
    with connection.cursor() as cursor:
        before = _counts(cursor)
    missing = max(0, target - before["session"])
    if missing:
        with transaction.atomic(), connection.cursor() as cursor:
            _without_triggers(cursor)
            cursor.execute(FILL_USERS_SQL, {"prefix": FILLER_PREFIX, "users": FILLER_USERS})
            indexes = [index for table in TABLES for index in _secondary_indexes(cursor, table)]
            for name, _definition in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            done = 0
            while done < missing:
                count = min(CHUNK, missing - done)
                cursor.execute(
                    FILL_SQL, {"pattern": FILLER_PREFIX + "%", "count": count, "kid": kid}
                )
                done += count
            for _name, definition in indexes:
                cursor.execute(definition)
    inserted = time.perf_counter()
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
        after = _counts(cursor)
    finished = time.perf_counter()
    return {
        "target": target,
        "added": missing,
        "counts_before": before,
        "counts": after,
        "insert_seconds": round(inserted - started, 2),
        "vacuum_seconds": round(finished - inserted, 2),
        "seconds": round(finished - started, 2),
    }


def main() -> None:
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("scale_data.py needs PostgreSQL (DATABASE_URL)")
    command = sys.argv[1]
    if command == "reset":
        result = remove(benchmark_user=True)
    elif command == "fill":
        result = fill(int(sys.argv[2]))
    elif command == "cleanup":
        result = remove(benchmark_user=False)
    else:
        sys.exit(f"unknown command {command!r}: reset, fill N or cleanup")
    print("BENCH-JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
