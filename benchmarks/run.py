"""Side-by-side benchmark: django-tokens ("ours", the example project) against
djangorestframework-simplejwt and django-oauth-toolkit ("peers", benchmarks/peers/) and a bare
DRF view (the floor), each served by gunicorn on 127.0.0.1, loaded by a few client processes.

    .venv/bin/python benchmarks/run.py            # about 6 minutes (SQLite)
    .venv/bin/python benchmarks/run.py --quick    # about 2 minutes
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python benchmarks/run.py        # about 9 minutes, with the database size

The main rows, then the scaling sections (--no-scaling skips them): workers, database size
and purge_tokens under load (PostgreSQL). Writes benchmarks/results/latest.md, latest.json
and (with matplotlib) latest.png and latest-scaling.png. Exits 1 if any row saw an error (a
non-2xx answer). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.loadgen import HOST, LoadPool, json_request  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
ISSUER = "http://127.0.0.1"
REFUSED_DATABASES = {"", "test", "postgres", "template0", "template1"}
TIME_BUDGET = 600.0


# --------------------------------------------------------------------------- environment


def database_url(scratch: Path) -> str:
    """DATABASE_URL (a scratch PostgreSQL database, created if missing) or a SQLite file in
    the scratch directory."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{scratch / 'bench.sqlite3'}"
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme.startswith("postgres"):
        if name in REFUSED_DATABASES:
            sys.exit(f"refusing to benchmark in the database {name!r}: use a scratch one (bench)")
        import psycopg
        from psycopg import sql

        maintenance = parts._replace(path="/postgres").geturl()
        with psycopg.connect(maintenance, autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            if not exists:
                print(f"creating the PostgreSQL database {name!r}")
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url


def redis_url() -> str | None:
    url = os.environ.get("REDIS_URL")
    if url and urlsplit(url).path.strip("/") in ("", "0"):
        sys.exit("refusing REDIS_URL with database 0: use another number (redis://…:6379/9)")
    return url or None


def rsa_key_pair() -> tuple[str, str]:
    """simplejwt's RS256 key: 2048 bits, as ours' keystore makes them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def server_environment(db_url: str, cache_url: str | None, scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TOKENS_REFRESH_COOKIE", "DJANGO_SETTINGS_MODULE", "REDIS_URL"):
        env.pop(name, None)  # body mode; each process names its own settings
    private, public = rsa_key_pair()
    env.update(
        DATABASE_URL=db_url,
        EXAMPLE_VAR_DIR=str(scratch),
        DEBUG="0",
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        TOKENS_ISSUER=ISSUER,
        BENCH_RSA_PRIVATE_KEY=private,
        BENCH_RSA_PUBLIC_KEY=public,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    if cache_url:
        env["REDIS_URL"] = cache_url
    return env


def setup_side(side: str, settings: str, env: dict[str, str]) -> dict[str, Any]:
    return data_script("setup_data.py", [side], settings, env, timeout=300)


def data_script(
    script: str, arguments: list[str], settings: str, env: dict[str, str], timeout: float
) -> dict[str, Any]:
    """Runs a data script of benchmarks/ in a subprocess (Django set up with ``settings``) and
    returns the JSON of its ``BENCH-JSON`` line."""
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "benchmarks" / script), *arguments],
        env={**env, "DJANGO_SETTINGS_MODULE": settings},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH-JSON ")]
    if result.returncode != 0 or not lines:
        sys.exit(
            f"{script} {' '.join(arguments)} failed:\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return json.loads(lines[-1].removeprefix("BENCH-JSON "))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    settings: str
    wsgi: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self, env: dict[str, str], workers: int, scratch: Path) -> None:
        self.port = free_port()
        self.log = scratch / f"gunicorn-{self.name}.log"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            self.wsgi,
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            "--chdir",
            str(ROOT),
            "--log-level",
            "warning",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command,
                env={**env, "DJANGO_SETTINGS_MODULE": self.settings},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: Ctrl-C reaches us, we stop it
            )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = request(self.port, "GET", "/bench/floor")
                if status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server {self.name} did not start:\n{self.log_tail()}")

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()  # gunicorn's master stops its workers
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group we created for it
            process.wait(5)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def obtain(port: int, path: str, body: dict[str, Any], field: str) -> str:
    method, path, data, headers = json_request(path, body)
    status, answer = request(port, method, path, data, headers)
    if status != 200:
        raise RuntimeError(f"POST {path}: {status} {answer[:300]!r}")
    return json.loads(answer)[field]


# --------------------------------------------------------------------------- the rows


@dataclass
class Variant:
    id: str
    label: str
    side: str  # "ours", "peer" or "floor"
    spec: dict[str, Any]
    note: str = ""
    # The cryptographic operations of one request, measured by crypto_floor():
    # {"rs256_sign": n, "rs256_verify": n, "hs256_verify": n, "pbkdf2_sha256": n}.
    crypto: dict[str, int] = field(default_factory=dict)


@dataclass
class Group:
    id: str
    title: str
    measures: str
    variants: list[Variant]
    baseline: str  # the ours row every ratio divides
    references: list[str] = field(default_factory=list)  # rows of other groups to compare to


def plan(ports: dict[str, int], ours: dict[str, Any], peer: dict[str, Any]) -> list[Group]:
    o, p, pn = ports["ours"], ports["peer"], ports["peer-noblacklist"]
    credentials = {"username": ours["username"], "password": ours["password"]}
    ours_access = obtain(o, "/api/token", credentials, "access_token")
    simplejwt_access = obtain(p, "/api/token/", credentials, "access")
    pbkdf2, md5 = peer["dot_clients"]["pbkdf2_sha256"], peer["dot_clients"]["md5"]
    iterations = peer["pbkdf2_iterations"]

    def get(port: int, path: str, token: str | None = None) -> dict[str, Any]:
        return {"kind": "get", "port": port, "path": path, "token": token}

    def cc(port: int, path: str, client: dict[str, str]) -> dict[str, Any]:
        return {"kind": "client_credentials", "port": port, "path": path, "scope": "read", **client}

    return [
        Group(
            "verify",
            "Verify an access token (GET a protected DRF view)",
            "GET with `Authorization: Bearer`; every view answers `{id, username}` of the token's "
            "user with `IsAuthenticated`. The floor views have no authentication at all.",
            [
                Variant(
                    "ours",
                    "ours: django_tokens JWTAuthentication",
                    "ours",
                    get(o, "/bench/verify", ours_access),
                    "RS256; one token over and over: its signature checked once per process; "
                    "revocation marks known from the feed (Redis pub/sub), else read",
                    # none: the keystore remembers the tokens a process verified, and this
                    # row presents one token over and over
                    {},
                ),
                Variant(
                    "ours-varied",
                    "ours: JWTAuthentication, a new token each request",
                    "ours",
                    {**get(o, "/bench/verify"), "tokens": ours["varied_access_tokens"]},
                    f"{len(ours['varied_access_tokens']):,} tokens in turn: each signature "
                    "checked, as for stateless verifiers",
                    {"rs256_verify": 1},
                ),
                Variant(
                    "ours-api-me",
                    "ours: example `GET /api/me`",
                    "ours",
                    get(o, "/api/me", ours_access),
                    "the example's view: + HasScope, scope, session; its `email` loads the "
                    "user row, as the claims hook that puts it in the token is off here",
                    {},
                ),
                Variant(
                    "simplejwt",
                    "simplejwt JWTAuthentication",
                    "peer",
                    get(p, "/bench/verify/simplejwt", simplejwt_access),
                    "RS256; loads the user row",
                    {"rs256_verify": 1},
                ),
                Variant(
                    "simplejwt-stateless",
                    "simplejwt JWTStatelessUserAuthentication",
                    "peer",
                    get(p, "/bench/verify/stateless", simplejwt_access),
                    "RS256; TokenUser from the claims",
                    {"rs256_verify": 1},
                ),
                Variant(
                    "dot",
                    "DOT OAuth2Authentication",
                    "peer",
                    get(p, "/bench/verify/dot", peer["dot_access_token"]),
                    "opaque token looked up in DOT's table",
                ),
                Variant(
                    "floor-peer",
                    "floor: bare DRF view (peer server)",
                    "floor",
                    get(p, "/bench/floor"),
                    "startproject middleware",
                ),
                Variant(
                    "floor-ours",
                    "floor: bare DRF view (ours server)",
                    "floor",
                    get(o, "/bench/floor"),
                    "the example's middleware (+ CORS)",
                ),
            ],
            baseline="ours",
        ),
        Group(
            "password",
            "Password issuance",
            "POST username + password (JSON), answer an access + refresh token pair. User "
            "passwords hashed with MD5 on both sides.",
            [
                Variant(
                    "ours",
                    "ours: `POST /api/token`",
                    "ours",
                    {"kind": "post_json", "port": o, "path": "/api/token", "body": credentials},
                    "session row + refresh row + audit row; throttle counters",
                    {"rs256_sign": 1},
                ),
                Variant(
                    "simplejwt-blacklist",
                    "simplejwt TokenObtainPairView (blacklist app)",
                    "peer",
                    {"kind": "post_json", "port": p, "path": "/api/token/", "body": credentials},
                    "OutstandingToken row",
                    {"rs256_sign": 2},
                ),
                Variant(
                    "simplejwt",
                    "simplejwt TokenObtainPairView (no blacklist app)",
                    "peer",
                    {"kind": "post_json", "port": pn, "path": "/api/token/", "body": credentials},
                    "no write",
                    {"rs256_sign": 2},
                ),
            ],
            baseline="ours",
        ),
        Group(
            "refresh",
            "Refresh with rotation",
            "POST the current refresh token, get a new pair; each client process keeps its "
            "own chain (the first token of a chain is obtained untimed).",
            [
                Variant(
                    "ours",
                    "ours: `POST /api/token/refresh`",
                    "ours",
                    {
                        "kind": "refresh_chain",
                        "port": o,
                        "obtain_path": "/api/token",
                        "obtain_body": credentials,
                        "path": "/api/token/refresh",
                        "field_in": "refresh_token",
                        "field_out": "refresh_token",
                    },
                    "row lock + compare-and-set + audit row",
                    {"rs256_sign": 1},
                ),
                Variant(
                    "simplejwt-rotate-blacklist",
                    "simplejwt TokenRefreshView (rotation + blacklist)",
                    "peer",
                    {
                        "kind": "refresh_chain",
                        "port": p,
                        "obtain_path": "/api/token/",
                        "obtain_body": credentials,
                        "path": "/api/token/refresh/",
                        "field_in": "refresh",
                        "field_out": "refresh",
                    },
                    "ROTATE_REFRESH_TOKENS + BLACKLIST_AFTER_ROTATION",
                    {"rs256_verify": 1, "rs256_sign": 2},
                ),
            ],
            baseline="ours",
        ),
        Group(
            "client_credentials",
            "OAuth 2.0 client_credentials",
            "POST grant_type=client_credentials&scope=read with HTTP Basic client "
            "authentication; both sides run DOT's TokenView and store one access-token row.",
            [
                Variant(
                    "ours",
                    "ours: `POST /oauth2/token`",
                    "ours",
                    cc(o, "/oauth2/token", {k: ours[k] for k in ("client_id", "client_secret")}),
                    f"JWT access token; secret hashed with `{ours['client_secret_hasher']}` "
                    "(salted SHA-256)",
                    {"rs256_sign": 1},
                ),
                Variant(
                    "dot-stock",
                    "DOT TokenView, stock (PBKDF2 secret)",
                    "peer",
                    cc(p, "/o/token/", pbkdf2),
                    f"opaque token; secret hashed with PBKDF2-SHA256, {iterations:,} iterations "
                    "(Django's default hasher)",
                    {"pbkdf2_sha256": 1},
                ),
                Variant(
                    "dot-md5",
                    "DOT TokenView (MD5 secret)",
                    "peer",
                    cc(p, "/o/token/", md5),
                    "opaque token; secret hashed with MD5",
                ),
            ],
            baseline="ours",
        ),
        Group(
            "api_key",
            "API-key assertion exchange (no peer)",
            "POST /auth/api-key with a fresh HS256 assertion per request (signed by the client "
            "before the clock starts); answers access, refresh and ID tokens. Compared with the "
            "floor rows of the verify group.",
            [
                Variant(
                    "ours",
                    "ours: `POST /auth/api-key`",
                    "ours",
                    {
                        "kind": "api_key",
                        "port": o,
                        "path": "/auth/api-key",
                        "key_id": ours["api_key_id"],
                        "secret": ours["api_key_secret"],
                    },
                    "jti once (cache add) + session + refresh + audit rows; 3 RS256 signatures",
                    {"hs256_verify": 1, "rs256_sign": 3},
                ),
            ],
            baseline="ours",
            references=["verify/floor-peer", "verify/floor-ours"],
        ),
    ]


def measure_groups(
    groups: list[Group], pool: LoadPool, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Each group's variants in interleaved blocks (A B C, then C B A …), so that drift in the
    machine's load hits every variant of a group alike."""
    measured: dict[str, dict[str, Any]] = {}
    block = args.duration / args.rounds
    for group in groups:
        print(f"\n== {group.title}")
        for variant in group.variants:
            key = f"{group.id}/{variant.id}"
            pool.prepare(key, variant.spec)
            measured[key] = {"blocks": []}
        for round_index in range(args.rounds):
            order = group.variants if round_index % 2 == 0 else group.variants[::-1]
            for variant in order:
                key = f"{group.id}/{variant.id}"
                result = pool.run(key, args.warmup, block)
                measured[key]["blocks"].append(result)
                rate = len(result["latencies"]) / block
                flag = f"  ERRORS: {result['errors']}" if result["errors"] else ""
                print(f"   {variant.label:52} {rate:9.1f} req/s{flag}")
                for sample in result["error_samples"][:2]:
                    print(f"      e.g. {sample}")
        # Counted after the timed blocks, on warm workers (a worker's first request loads
        # the signing keys: one query, once per process).
        for variant in group.variants:
            key = f"{group.id}/{variant.id}"
            measured[key]["probe"] = pool.probe(key, args.probe)
    return measured


@dataclass
class Bounds:
    """What bounds a row's throughput: the floor row of its server (Django, DRF and the
    middleware, nothing else) and the crypto floor of its work for ``parallel`` processes."""

    floor_rows: dict[int, str]  # server port -> the key of that server's floor row
    crypto: dict[str, Any]  # crypto_floor()'s result
    parallel: int  # min(gunicorn workers, cores): processes that can sign at once


#: Variant.crypto's operations -> their entries in crypto_floor()'s result.
CRYPTO_OPERATIONS = {
    "rs256_sign": "sign",
    "rs256_verify": "verify",
    "hs256_verify": "hs256_verify",
    "pbkdf2_sha256": "pbkdf2_sha256",
}


def crypto_ceiling(work: dict[str, int], crypto: dict[str, Any], parallel: int) -> float | None:
    """Requests per second ``parallel`` processes could serve doing nothing but ``work``'s
    cryptography (None when the work has none)."""
    seconds = sum(
        count * crypto[CRYPTO_OPERATIONS[operation]]["microseconds"] / 1e6
        for operation, count in work.items()
        if CRYPTO_OPERATIONS[operation] in crypto
    )
    return round(parallel / seconds, 1) if seconds else None


def bound(
    row: dict[str, Any], variant: Variant, rows: dict[str, dict[str, Any]], bounds: Bounds
) -> dict[str, Any] | None:
    """The row's throughput as a share of min(its server's floor, the crypto floor of its
    work)."""
    floor_key = bounds.floor_rows.get(variant.spec.get("port", 0))
    floor = rows[floor_key]["throughput"] if floor_key in rows else None
    crypto = crypto_ceiling(variant.crypto, bounds.crypto, bounds.parallel)
    candidates = [(value, name) for value, name in ((floor, "floor"), (crypto, "crypto")) if value]
    if not candidates:
        return None
    limit_rps, limit = min(candidates)
    return {
        "floor_row": floor_key,
        "floor_rps": floor,
        "crypto_work": variant.crypto,
        "crypto_rps": crypto,
        "limit": limit,
        "limit_rps": limit_rps,
        "percent": round(100 * row["throughput"] / limit_rps, 1),
    }


def summarise(
    groups: list[Group], measured: dict[str, dict[str, Any]], bounds: Bounds | None = None
) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for group in groups:
        for variant in group.variants:
            key = f"{group.id}/{variant.id}"
            data = measured[key]
            latencies = sorted(lat for b in data["blocks"] for lat in b["latencies"])
            duration = sum(b["duration"] for b in data["blocks"])
            errors = sum(b["errors"] for b in data["blocks"])
            queries = [q for q in data["probe"]["queries"] if q is not None]
            cache_calls = [c for c in data["probe"]["cache_calls"] if c is not None]
            rows[key] = {
                "id": key,
                "variant": variant.id,
                "label": variant.label,
                "side": variant.side,
                "note": variant.note,
                "requests": len(latencies),
                "seconds": round(duration, 2),
                "throughput": round(len(latencies) / duration, 2) if duration else 0.0,
                "block_throughputs": [
                    round(len(b["latencies"]) / b["duration"], 2) for b in data["blocks"]
                ],
                "p50_ms": round(percentile(latencies, 50) * 1000, 3) if latencies else None,
                "p99_ms": round(percentile(latencies, 99) * 1000, 3) if latencies else None,
                "errors": errors,
                "error_samples": [s for b in data["blocks"] for s in b["error_samples"]][:3],
                "flagged": errors > 0 or not latencies,
                "queries_per_request": report.query_summary(queries),
                "cache_round_trips_per_request": report.query_summary(cache_calls),
                "probe_statuses": data["probe"]["statuses"],
            }
    if bounds is not None:
        for group in groups:
            for variant in group.variants:
                key = f"{group.id}/{variant.id}"
                rows[key]["bound"] = bound(rows[key], variant, rows, bounds)
    summary = []
    for group in groups:
        baseline = rows[f"{group.id}/{group.baseline}"]
        group_rows = []
        for key in [f"{group.id}/{v.id}" for v in group.variants] + group.references:
            row = dict(rows[key])
            row["reference"] = not key.startswith(f"{group.id}/")
            row["ours_over_this"] = ratio(baseline["throughput"], row["throughput"])
            row["this_p50_over_ours"] = ratio(row["p50_ms"], baseline["p50_ms"])
            group_rows.append(row)
        summary.append(
            {
                "id": group.id,
                "title": group.title,
                "measures": group.measures,
                "baseline": f"{group.id}/{group.baseline}",
                "rows": group_rows,
            }
        )
    return summary


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


# --------------------------------------------------------------------------- crypto floor


def crypto_floor(seconds: float, pbkdf2_rounds: int = 2) -> dict[str, Any]:
    """PyJWT RS256 sign and verify of an access-token-sized JWT and HS256 verify of an API-key
    assertion, for ``seconds`` each, and PBKDF2, in this process (one core)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "1",
        "aud": "django-tokens",
        "exp": now + 3600,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex,
        "scope": "profile email",
        "preferred_username": "bench-user",
    }
    headers = {"kid": "k" * 43, "typ": "at+jwt"}
    token = jwt.encode(claims, key, algorithm="RS256", headers=headers)

    def sign() -> None:
        jwt.encode(claims, key, algorithm="RS256", headers=headers)

    def verify() -> None:
        jwt.decode(token, public, algorithms=["RS256"], audience="django-tokens", issuer=ISSUER)

    hs256_secret = uuid.uuid4().hex * 2
    assertion = jwt.encode(
        {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}, hs256_secret, algorithm="HS256"
    )

    def hs256_verify() -> None:
        jwt.decode(assertion, hs256_secret, algorithms=["HS256"])

    result: dict[str, Any] = {"key": "RSA 2048", "token_bytes": len(token)}
    for name, operation in (("sign", sign), ("verify", verify), ("hs256_verify", hs256_verify)):
        for _ in range(50):
            operation()
        count, started = 0, time.perf_counter()
        deadline = started + seconds
        while True:
            for _ in range(20):
                operation()
            count += 20
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - started
        result[name] = {
            "per_second": round(count / elapsed, 1),
            "microseconds": round(elapsed / count * 1e6, 1),
        }
    result["pbkdf2_sha256"] = pbkdf2_floor(pbkdf2_rounds)
    return result


def pbkdf2_floor(rounds: int) -> dict[str, Any]:
    """One PBKDF2-SHA256 check at Django's default iteration count (what stock DOT's client
    secret costs), ``rounds`` times."""
    import hashlib

    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    iterations = PBKDF2PasswordHasher.iterations
    started = time.perf_counter()
    for _ in range(rounds):
        hashlib.pbkdf2_hmac("sha256", b"client-secret", b"salt" * 4, iterations)
    elapsed = time.perf_counter() - started
    return {
        "per_second": round(rounds / elapsed, 2),
        "microseconds": round(elapsed / rounds * 1e6, 1),
        "iterations": iterations,
    }


# --------------------------------------------------------------------------- scaling

WORKER_COUNTS = (1, 2, 4)
#: The rows the workers section keeps from plan(), per group, in this order.
WORKER_ROWS = {
    "verify": ["ours", "simplejwt", "floor-ours", "floor-peer"],
    "client_credentials": ["ours", "dot-md5"],
}
DATABASE_SIZES = (1_000, 100_000, 1_000_000)
#: Seconds of unrecorded load per row on freshly started servers.
WARM_UP = 0.5
#: Seconds of issuance load before the purge (the reference), and around it.
PURGE_BASELINE = 5.0
PURGE_MARGIN = 1.0
#: The purge is stopped (and the run flagged) if it takes longer than this.
PURGE_TIME_LIMIT = 900.0
PURGE_STEP = re.compile(
    r"^(refresh tokens|sessions|audit events|oauth2 rows|signing keys retired): (\d+)$"
)
OURS_SETTINGS = "benchmarks.ours_settings"


def with_rows(args: argparse.Namespace, duration: float, rounds: int) -> argparse.Namespace:
    """``args`` with another row length, for measure_groups()."""
    return argparse.Namespace(**{**vars(args), "duration": duration, "rounds": rounds})


def warm_up(groups: list[Group], pool: LoadPool, seconds: float = WARM_UP) -> None:
    """A short unrecorded block of every row on freshly started servers: a worker's first
    requests import code and load the signing keys, which a short row would measure."""
    for group in groups:
        for variant in group.variants:
            key = f"warm-up/{group.id}/{variant.id}"
            pool.prepare(key, variant.spec)
            pool.run(key, 0.0, seconds)


def measure_workers(
    env: dict[str, str],
    scratch: Path,
    args: argparse.Namespace,
    ours: dict[str, Any],
    peer: dict[str, Any],
    pool: LoadPool,
    crypto: dict[str, Any],
) -> dict[str, Any]:
    """Verify and client_credentials (the WORKER_ROWS) with 1, 2 and 4 gunicorn workers per
    server: fresh servers for each count, the same rows as the main tables, shorter."""
    started = time.monotonic()
    points = []
    for workers in WORKER_COUNTS:
        print(f"\n==== scaling: {workers} gunicorn worker(s) per server")
        servers = [
            Server(f"ours-{workers}w", OURS_SETTINGS, "example_project.wsgi:application"),
            Server(
                f"peer-{workers}w", "benchmarks.peers.settings", "benchmarks.peers.wsgi:application"
            ),
        ]
        with servers_running(servers, env, workers, scratch):
            ports = {"ours": servers[0].port, "peer": servers[1].port}
            ports["peer-noblacklist"] = ports["peer"]  # its rows are not kept here
            groups = [
                Group(
                    group.id,
                    group.title,
                    group.measures,
                    [v for v_id in WORKER_ROWS[group.id] for v in group.variants if v.id == v_id],
                    group.baseline,
                )
                for group in plan(ports, ours, peer)
                if group.id in WORKER_ROWS
            ]
            warm_up(groups, pool)
            measured = measure_groups(
                groups, pool, with_rows(args, args.scaling_duration, args.scaling_rounds)
            )
        bounds = Bounds(
            {ports["ours"]: "verify/floor-ours", ports["peer"]: "verify/floor-peer"},
            crypto,
            min(workers, os.cpu_count() or 1),
        )
        points.append({"workers": workers, "groups": summarise(groups, measured, bounds)})
    return {
        "worker_counts": list(WORKER_COUNTS),
        "seconds_per_row": args.scaling_duration,
        "blocks_per_row": args.scaling_rounds,
        "points": points,
        "seconds": round(time.monotonic() - started, 1),
    }


def measure_database_size(
    env: dict[str, str],
    scratch: Path,
    args: argparse.Namespace,
    ours: dict[str, Any],
    pool: LoadPool,
) -> dict[str, Any]:
    """Password issuance and refresh with 10^3, 10^5 and 10^6 stored sessions (each with its
    refresh token and audit entry, benchmarks/scale_data.py), then ``purge_tokens`` removing
    the filler while issuance runs."""
    started = time.monotonic()
    timeout = PURGE_TIME_LIMIT
    print("\n==== database size: removing the benchmark users' sessions ...")
    reset = data_script("scale_data.py", ["reset"], OURS_SETTINGS, env, timeout)
    credentials = {"username": ours["username"], "password": ours["password"]}
    server = Server("ours-size", OURS_SETTINGS, "example_project.wsgi:application")
    points = []
    with servers_running([server], env, args.workers, scratch):
        port = server.port
        issuance = {"kind": "post_json", "port": port, "path": "/api/token", "body": credentials}
        for size in DATABASE_SIZES:
            print(f"\n==== database size: {size:,} stored sessions")
            fill = data_script("scale_data.py", ["fill", str(size)], OURS_SETTINGS, env, timeout)
            print(
                f"   filled: {fill['added']:,} sessions added in {fill['seconds']:.1f} s; "
                f"tables now {fill['counts']}"
            )
            group = Group(
                f"size-{size}",
                f"{size:,} stored sessions",
                "",
                [
                    Variant(
                        "issuance",
                        "ours: `POST /api/token`",
                        "ours",
                        issuance,
                    ),
                    Variant(
                        "refresh",
                        "ours: `POST /api/token/refresh`",
                        "ours",
                        {
                            "kind": "refresh_chain",
                            "port": port,
                            "obtain_path": "/api/token",
                            "obtain_body": credentials,
                            "path": "/api/token/refresh",
                            "field_in": "refresh_token",
                            "field_out": "refresh_token",
                        },
                    ),
                ],
                baseline="issuance",
            )
            if not points:
                warm_up([group], pool)
            measured = measure_groups(
                [group], pool, with_rows(args, args.scaling_duration, args.scaling_rounds)
            )
            rows = summarise([group], measured)[0]["rows"]
            points.append({"sessions": size, "fill": fill, "rows": rows})
        purge = measure_purge(issuance, env, pool, args)
    print("   deleting what is left of the filler (live sessions, audit entries) ...")
    cleanup = data_script("scale_data.py", ["cleanup"], OURS_SETTINGS, env, timeout)
    first = {row["variant"]: row["throughput"] for row in points[0]["rows"]}
    for point in points:
        for row in point["rows"]:
            row["over_smallest"] = ratio(row["throughput"], first[row["variant"]])
    return {
        "sizes": list(DATABASE_SIZES),
        "seconds_per_row": args.scaling_duration,
        "blocks_per_row": args.scaling_rounds,
        "gunicorn_workers": args.workers,
        "reset": reset,
        "points": points,
        "purge": purge,
        "cleanup": cleanup,
        "seconds": round(time.monotonic() - started, 1),
    }


def measure_purge(
    issuance: dict[str, Any], env: dict[str, str], pool: LoadPool, args: argparse.Namespace
) -> dict[str, Any]:
    """``manage.py purge_tokens`` while the clients keep ``POST /api/token`` going: issuance
    throughput and latency before and during the purge, and the longest time no request
    completed (a stall)."""
    key = "purge/issuance"
    pool.prepare(key, issuance)
    print(f"\n==== purge_tokens under issuance load: {PURGE_BASELINE:g} s of load first ...")
    opened = pool.start(key, args.warmup, limit=PURGE_BASELINE)
    time.sleep(max(0.0, opened + PURGE_BASELINE - time.monotonic()) + 0.05)
    before = load_window(pool.halt(), opened, opened + PURGE_BASELINE)
    print(
        f"   before: {before['throughput']:.1f} req/s, p99 {before['p99_ms']} ms, "
        f"max {before['max_ms']} ms"
    )
    opened = pool.start(key, args.warmup, limit=PURGE_TIME_LIMIT + 60)
    purge: dict[str, Any] = {}
    try:
        time.sleep(max(0.0, opened - time.monotonic()) + PURGE_MARGIN)
        with LockWaits(env["DATABASE_URL"]) as lock_waits:
            purge = run_purge(env)
        time.sleep(PURGE_MARGIN)
    finally:
        halted = time.monotonic()
        load = pool.halt()
    during = load_window(load, purge["started"], purge["ended"])
    print(
        f"   purge: {purge['seconds']:.1f} s, {purge['rows_removed']:,} rows removed "
        f"{purge['counts']}; during: {during['throughput']:.1f} req/s, p99 {during['p99_ms']} ms, "
        f"max {during['max_ms']} ms, longest gap {during['longest_gap_ms']} ms; "
        f"lock waits in {lock_waits.waiting} of {lock_waits.samples} samples"
    )
    timeline = []
    origin = purge["started"]
    second = opened
    while second < halted - 0.5:
        window = load_window(load, second, min(second + 1.0, halted))
        timeline.append(
            {
                "t": round(second - origin, 2),
                "throughput": window["throughput"],
                "max_ms": window["max_ms"],
                "errors": window["errors"],
            }
        )
        second += 1.0
    purge.pop("started")
    purge.pop("ended")
    return {
        **purge,
        "lock_waits": {
            "samples": lock_waits.samples,
            "interval_seconds": LockWaits.INTERVAL,
            "samples_with_a_wait": lock_waits.waiting,
            "most_waiting": lock_waits.most,
            "examples": lock_waits.examples,
        },
        "load_before": before,
        "load_during": during,
        "throughput_during_over_before": ratio(during["throughput"], before["throughput"]),
        "timeline": timeline,
        "flagged": purge["returncode"] != 0 or bool(during["errors"] or before["errors"]),
    }


class LockWaits:
    """Samples PostgreSQL's ``pg_stat_activity`` every INTERVAL seconds, from a thread, while
    the block runs: how often some backend of the database was waiting for a lock (what a
    purge that blocked issuance would show) — the sampling connection aside."""

    INTERVAL = 0.1

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples = 0
        self.waiting = 0
        self.most = 0
        self.examples: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            while not self._stop.is_set():
                rows = connection.execute(
                    "SELECT wait_event, left(query, 120) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock' "
                    "AND pid <> pg_backend_pid()"
                ).fetchall()
                self.samples += 1
                if rows:
                    self.waiting += 1
                    self.most = max(self.most, len(rows))
                    if len(self.examples) < 5:
                        self.examples.append(f"{rows[0][0]}: {rows[0][1]}")
                self._stop.wait(self.INTERVAL)


def run_purge(env: dict[str, str]) -> dict[str, Any]:
    """``manage.py purge_tokens`` with ours' settings; each step's count and when it ended."""
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), "purge_tokens"],
        env={**env, "DJANGO_SETTINGS_MODULE": OURS_SETTINGS},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: stopped below, also on Ctrl-C
    )
    started = time.monotonic()
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.monotonic(), line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        returncode = process.wait(PURGE_TIME_LIMIT)
    except subprocess.TimeoutExpired:
        returncode = -1
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    ended = time.monotonic()
    reader.join(5)
    steps = []
    for at, line in lines:
        match = PURGE_STEP.match(line)
        if match:
            steps.append(
                {"step": match[1], "count": int(match[2]), "at_seconds": round(at - started, 2)}
            )
    counts = {step["step"]: step["count"] for step in steps}
    return {
        "command": "manage.py purge_tokens (batches of 5000)",
        "started": started,
        "ended": ended,
        "seconds": round(ended - started, 2),
        "returncode": returncode,
        "timed_out": returncode == -1,
        "steps": steps,
        "counts": counts,
        "rows_removed": sum(
            count for step, count in counts.items() if step != "signing keys retired"
        ),
        "output_tail": [line for _, line in lines][-15:],
    }


def load_window(load: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """Issuance in [start, end): throughput, latency percentiles, the slowest request and the
    longest time in which no request completed."""
    pairs = [
        (done, latency)
        for done, latency in zip(load["completed"], load["latencies"], strict=True)
        if start <= done < end
    ]
    times = sorted(done for done, _ in pairs)
    latencies = sorted(latency for _, latency in pairs)
    seconds = max(end - start, 1e-9)
    edges = [start, *times, end]
    return {
        "seconds": round(seconds, 2),
        "requests": len(times),
        "throughput": round(len(times) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "longest_gap_ms": round(max(b - a for a, b in itertools.pairwise(edges)) * 1000, 1),
        "errors": sum(1 for failed in load["failed"] if start <= failed < end),
    }


def run_scaling(
    env: dict[str, str],
    scratch: Path,
    args: argparse.Namespace,
    ours: dict[str, Any],
    peer: dict[str, Any],
    crypto: dict[str, Any],
) -> dict[str, Any]:
    if args.no_scaling:
        return {"skipped": "--no-scaling"}
    scaling: dict[str, Any] = {}
    with LoadPool(args.clients) as pool:
        scaling["workers"] = measure_workers(env, scratch, args, ours, peer, pool, crypto)
        if not ours["database"].startswith("postgresql"):
            reason = (
                "needs PostgreSQL (DATABASE_URL): the filler is written with PostgreSQL's bulk "
                "SQL (generate_series), and SQLite's single writer lock would make the purge "
                "under load a measure of that lock"
            )
            print(f"\n==== database size: skipped, it {reason}")
            scaling["database_size"] = {"skipped": reason}
        elif args.quick:
            reason = "--quick (filling and purging 10^6 sessions takes minutes)"
            print(f"\n==== database size: skipped, {reason}")
            scaling["database_size"] = {"skipped": reason}
        else:
            scaling["database_size"] = measure_database_size(env, scratch, args, ours, pool)
    return scaling


# --------------------------------------------------------------------------- machine


def machine(database: str, cache: str | None, workers: int, args: argparse.Namespace) -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    packages = {}
    for name in (
        "Django",
        "djangorestframework",
        "djangorestframework-simplejwt",
        "django-oauth-toolkit",
        "PyJWT",
        "cryptography",
        "gunicorn",
        "psycopg",
        "redis",
        "django-tokens",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            # "-dirty" when tracked files differ from the commit: the figures are not its own.
            ["git", "describe", "--always", "--dirty", "--abbrev=7"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": packages,
        "commit": commit,
        "database": database,
        "cache": cache or "local memory (per process)",
        "gunicorn_workers": workers,
        "clients": args.clients,
        "seconds_per_row": args.duration,
        "blocks_per_row": args.rounds,
        "warmup_per_block": args.warmup,
        "quick": args.quick,
        "password_hasher": "MD5 (django.contrib.auth.hashers.MD5PasswordHasher), both sides",
        "signing": "RS256, RSA 2048, both sides",
    }


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about one minute: short rows")
    parser.add_argument("--duration", type=float, help="measured seconds per row (10; quick 2)")
    parser.add_argument("--rounds", type=int, help="interleaved blocks per row (4; quick 1)")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up s per block (0.5)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--probe", type=int, default=4, help="query-count probes per row")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR, help="results directory")
    parser.add_argument("--keep-scratch", action="store_true", help="keep logs and SQLite file")
    parser.add_argument(
        "--no-scaling", action="store_true", help="skip the scaling sections (workers, data size)"
    )
    parser.add_argument(
        "--scaling-duration", type=float, help="measured s per scaling row (3; quick 1)"
    )
    parser.add_argument("--scaling-rounds", type=int, help="blocks per scaling row (2; quick 1)")
    args = parser.parse_args()
    quick = args.quick
    args.duration = args.duration or (2.0 if quick else 10.0)
    args.rounds = args.rounds or (1 if quick else 4)
    args.scaling_duration = args.scaling_duration or (1.0 if quick else 3.0)
    args.scaling_rounds = args.scaling_rounds or (1 if quick else 2)
    return args


def estimate_seconds(args: argparse.Namespace, postgres: bool) -> float:
    """What the run should take on a quiet machine (the fills and the purge are guesses)."""
    per_block = args.warmup + 0.3
    seconds = 16 * (args.duration + args.rounds * per_block) + 40
    if args.no_scaling:
        return seconds
    scaling_row = args.scaling_duration + args.scaling_rounds * per_block
    rows = sum(len(ids) for ids in WORKER_ROWS.values())
    seconds += len(WORKER_COUNTS) * (rows * (scaling_row + WARM_UP + 0.3) + 8)
    if postgres and not args.quick:
        seconds += len(DATABASE_SIZES) * 2 * scaling_row + 2 * WARM_UP + 45  # + the fills
        seconds += PURGE_BASELINE + 2 * PURGE_MARGIN + 90 + 20  # + the purge, the clean-up
    return seconds


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def servers_running(
    servers: list[Server], env: dict[str, str], workers: int, scratch: Path
) -> Iterator[None]:
    try:
        for server in servers:
            server.start(env, workers, scratch)
        for server in servers:
            server.wait_ready()
        yield
    except BaseException:
        for server in servers:
            tail = server.log_tail().strip()
            if tail:
                print(f"--- log of {server.name} (last lines) ---\n{tail[-1500:]}")
        raise
    finally:
        for server in servers:
            server.stop()


def main() -> int:
    args = parse_args()
    # Ctrl-C and SIGTERM unwind through every `finally`, which stop what the run started
    # (SIGINT explicitly: a shell starting us in the background may have ignored it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="django-tokens-bench-"))
    try:
        return _main(args, scratch, started)
    except KeyboardInterrupt as exc:
        print(
            f"\ninterrupted ({str(exc) or 'Ctrl-C'}): "
            "servers and clients stopped, no results written"
        )
        return 130
    finally:
        if args.keep_scratch:
            print(f"scratch directory kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _main(args: argparse.Namespace, scratch: Path, started: float) -> int:
    db_url = database_url(scratch)
    cache_url = redis_url()
    estimate = estimate_seconds(args, db_url.startswith("postgres"))
    print(f"estimated duration: {estimate / 60:.1f} min")
    if estimate > TIME_BUDGET:
        print(f"warning: over the {TIME_BUDGET / 60:.0f}-minute budget; lower --duration")
    date = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()

    print("crypto floor (in-process) ...")
    crypto = crypto_floor(1.0 if args.quick else 2.0, 1 if args.quick else 2)

    env = server_environment(db_url, cache_url, scratch)
    print("setting up the database (migrate, user, keys, clients) ...")
    ours = setup_side("ours", "benchmarks.ours_settings", env)
    peer = setup_side("peer", "benchmarks.peers.settings", env)
    servers = [
        Server("ours", "benchmarks.ours_settings", "example_project.wsgi:application"),
        Server("peer", "benchmarks.peers.settings", "benchmarks.peers.wsgi:application"),
        Server(
            "peer-noblacklist",
            "benchmarks.peers.settings_noblacklist",
            "benchmarks.peers.wsgi:application",
        ),
    ]
    with servers_running(servers, env, args.workers, scratch), LoadPool(args.clients) as pool:
        ports = {server.name: server.port for server in servers}
        print("servers: " + ", ".join(f"{name} :{port}" for name, port in ports.items()))
        groups = plan(ports, ours, peer)
        measured = measure_groups(groups, pool, args)
    floors = {
        ports["ours"]: "verify/floor-ours",
        ports["peer"]: "verify/floor-peer",
        ports["peer-noblacklist"]: "verify/floor-peer",  # the same project, one app fewer
    }
    bounds = Bounds(floors, crypto, min(args.workers, os.cpu_count() or 1))
    summary = summarise(groups, measured, bounds)
    main_seconds = time.monotonic() - started
    load_after_main = os.getloadavg()
    scaling = run_scaling(env, scratch, args, ours, peer, crypto)
    info = machine(ours["database"], cache_url, args.workers, args)
    info["load_average_before"] = [round(x, 2) for x in load_before]
    info["load_average_after_main_rows"] = [round(x, 2) for x in load_after_main]
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    elapsed = time.monotonic() - started
    results = {
        "date": date,
        "elapsed_seconds": round(elapsed, 1),
        "machine": info,
        "main_rows_seconds": round(main_seconds, 1),
        "groups": summary,
        "crypto_floor": crypto,
        "scaling": scaling,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.markdown(results)
    (args.output / "latest.md").write_text(markdown)
    chart = report.chart(results, args.output / "latest.png")
    scaling_chart = report.scaling_chart(results, args.output / "latest-scaling.png")
    print("\n" + markdown)
    print(f"written: {args.output / 'latest.md'}, {args.output / 'latest.json'}")
    print(chart)
    print(scaling_chart)
    print(f"total time: {elapsed:.0f} s")
    flagged = [row["id"] for group in summary for row in group["rows"] if row["flagged"]]
    flagged += report.scaling_flagged(scaling)
    if flagged:
        print(f"FLAGGED (errors or no successful request): {', '.join(sorted(set(flagged)))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
