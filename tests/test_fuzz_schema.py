"""Every operation of the served OpenAPI schema (``GET /api/schema``), fuzzed with schemathesis.

The schema is loaded from the example project's WSGI application, and the generated requests
go to that application in-process, on the test database and the configured cache. Three kinds
of case are sent to each operation: schemathesis' positive cases (bodies, parameters and
headers that match the schema), its negative cases (ones that do not), and cases carrying live
credentials — a real user's password, a freshly signed API-key assertion, refresh and access
tokens just issued, a django-oauth-toolkit client's secret and an authorization code — so that
the happy paths are fuzzed too, not only the refusals.

Each answer must not be a server error (no 5xx), must conform to the schema (a documented
status code and content type, a body that matches the documented schema), and, when it is an
error, must be a JSON object carrying ``error`` (never HTML, never a traceback). Every operation
must have answered at least one success and one refusal.

``DJANGO_TOKENS_FUZZ_CASES`` sets the number of cases across all operations (default 1000;
``.ci/run`` sends 10,000 on PostgreSQL + Redis). The run is reproducible: each operation's
generator has a fixed seed, and nothing is stored between runs. The counts go to the pytest
terminal summary and to ``fuzz-summary.txt`` in pytest's base temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import jwt
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.failures import CustomFailure, FailureGroup, ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from django_tokens import api_keys
from tests.test_oauth2_endpoints import REDIRECT_URI, authorization_code, web_client
from tests.test_oauth2_token import OAuthClient, basic, create_application, printed_secret

pytestmark = [pytest.mark.long, pytest.mark.django_db(transaction=True)]

TARGET_CASES = int(os.environ.get("DJANGO_TOKENS_FUZZ_CASES", "1000"))
SCHEMA_PATH = "/api/schema?format=json"
SEED = 20_240_601
PASSWORD = "fuzz-password-0123456789"
USER_SCOPE = "openid profile email"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "<html", "<!DOCTYPE")


# -- live credentials, for the happy paths --------------------------------------------------


@dataclass
class Live:
    """A user, an API key and two OAuth clients, and a way to get fresh tokens for each."""

    user: Any
    key_id: str
    secret: str
    service: OAuthClient
    web: OAuthClient
    client: Client = field(default_factory=Client)
    _userinfo_token: str | None = None

    def assertion(self, algorithm: str = "HS256") -> str:
        now = int(time.time())
        claims = {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self.secret, algorithm=algorithm, headers={"kid": self.key_id})

    def password_tokens(self) -> dict[str, Any]:
        body = {"username": self.user.username, "password": PASSWORD}
        return self._json_post("/api/token", body)

    def keycloak_tokens(self) -> dict[str, Any]:
        return self._json_post("/auth/login", {"email": self.user.email, "password": PASSWORD})

    def _json_post(self, path: str, body: dict[str, str]) -> dict[str, Any]:
        response = self.client.post(path, json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.content
        return response.json()

    def client_token(self, scope: str = "read") -> str:
        response = self.client.post(
            "/oauth2/token",
            {"grant_type": "client_credentials", "scope": scope},
            HTTP_AUTHORIZATION=basic(self.service.client_id, self.service.secret),
        )
        assert response.status_code == 200, response.content
        return str(response.json()["access_token"])

    def code(self) -> tuple[str, str]:
        """An authorization code (the user signed in and allowed) and its PKCE verifier."""
        return authorization_code(self.user, self.web, USER_SCOPE)

    def user_tokens(self) -> dict[str, Any]:
        code, verifier = self.code()
        response = self.client.post(
            "/oauth2/token",
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            HTTP_AUTHORIZATION=self.web_basic,
        )
        assert response.status_code == 200, response.content
        return dict(response.json())

    def userinfo_token(self) -> str:
        if self._userinfo_token is None:
            self._userinfo_token = str(self.user_tokens()["access_token"])
        return self._userinfo_token

    @property
    def service_basic(self) -> str:
        return basic(self.service.client_id, self.service.secret)

    @property
    def web_basic(self) -> str:
        return basic(self.web.client_id, self.web.secret)


def _bearer(case: Any, token: str) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


def _basic(case: Any, value: str) -> None:
    case.headers = {**(case.headers or {}), "Authorization": value}


def _form(case: Any, fields: dict[str, str]) -> None:
    case.body = fields
    case.media_type = "application/x-www-form-urlencoded"


def _json(case: Any, body: dict[str, Any]) -> None:
    case.body = body
    case.media_type = "application/json"


def _other_media_type(case: Any) -> None:
    """The generated body in a media type the operation does not take."""
    if case.media_type == "application/json":
        if isinstance(case.body, dict) and all(isinstance(v, str) for v in case.body.values()):
            case.media_type = "application/x-www-form-urlencoded"
        else:
            case.body = json.dumps(case.body)
            case.media_type = "text/plain"
    else:
        case.media_type = "application/json"


def _password_token(case: Any, live: Live, variant: int) -> None:
    if variant % 2:
        _json(case, {})
        case.headers = {
            **(case.headers or {}),
            "username": live.user.username,
            "password": PASSWORD,
        }
    else:
        _json(case, {"username": live.user.username, "password": PASSWORD})


def _oauth2_token(case: Any, live: Live, variant: int) -> None:
    grant = variant % 3
    if grant == 0:
        _basic(case, live.service_basic)
        _form(case, {"grant_type": "client_credentials", "scope": "read"})
    elif grant == 1:
        code, verifier = live.code()
        _basic(case, live.web_basic)
        _form(
            case,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
    else:
        refresh_token = live.user_tokens()["refresh_token"]
        _basic(case, live.web_basic)
        _form(case, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def _me(case: Any, live: Live, variant: int) -> None:
    """An access token of each service: password, API key, OAuth 2.0 user and client."""
    kind = variant % 4
    if kind == 0:
        token = live.password_tokens()["access_token"]
    elif kind == 1:
        token = live.keycloak_tokens()["access_token"]
    elif kind == 2:
        token = live.userinfo_token()
    else:
        token = live.client_token("read profile")
    _bearer(case, token)


def _revoke(case: Any, live: Live, variant: int) -> None:
    _basic(case, live.service_basic)
    _form(case, {"token": live.client_token(), "token_type_hint": "access_token"})


def _introspect(case: Any, live: Live, variant: int) -> None:
    _basic(case, live.service_basic)
    token = live.client_token() if variant % 2 else live.password_tokens()["access_token"]
    _form(case, {"token": token})


def _userinfo(case: Any, live: Live, variant: int) -> None:
    _bearer(case, live.userinfo_token())


#: How a generated case of each operation becomes one with live credentials.
VALID: dict[str, Callable[[Any, Live, int], None]] = {
    "POST /api/token": _password_token,
    "POST /api/token/refresh": lambda case, live, _: _json(
        case, {"refresh_token": live.password_tokens()["refresh_token"]}
    ),
    "POST /api/token/logout": lambda case, live, _: _bearer(
        case, live.password_tokens()["access_token"]
    ),
    "GET /api/me": _me,
    "POST /auth/api-key": lambda case, live, variant: _bearer(
        case, live.assertion(("HS256", "HS384", "HS512")[variant % 3])
    ),
    "POST /auth/login": lambda case, live, _: _json(
        case, {"email": live.user.email.upper(), "password": PASSWORD}
    ),
    "POST /auth/refresh": lambda case, live, _: _json(
        case, {"refresh_token": live.keycloak_tokens()["refresh_token"]}
    ),
    "POST /auth/logout": lambda case, live, _: _bearer(
        case, live.keycloak_tokens()["access_token"]
    ),
    "POST /oauth2/token": _oauth2_token,
    "POST /oauth2/revoke": _revoke,
    "POST /oauth2/introspect": _introspect,
    "GET /oauth2/userinfo": _userinfo,
    "POST /oauth2/userinfo": _userinfo,
}


# -- checks ----------------------------------------------------------------------------------


def error_answers_are_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error answer (4xx, 5xx) is a JSON object that names the error (this app's ``error``,
    or DRF's ``detail`` in the example's own API): never HTML, never a traceback, never
    empty."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == "application/json", (
        f"{response.status_code} answered as {content_type!r}"
    )
    text = response.content.decode("utf-8", "replace")
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"{response.status_code} body contains {marker!r}"
    body = json.loads(text)
    assert isinstance(body, dict), "the error body is not a JSON object"
    # This app's envelopes carry ``error``; DRF's, in the example's own API, ``detail``.
    assert isinstance(body.get("error", body.get("detail")), str), "the error body says nothing"
    return None


RESPONSE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    error_answers_are_json,
]
#: Generated cases are also checked against the request schema: one that breaks it is refused.
GENERATED_CASE_CHECKS = [*RESPONSE_CHECKS, negative_data_rejection]


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str
    operation: str
    status: int | None
    title: str
    example: str


@dataclass
class Tally:
    cases: int = 0
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    findings: dict[tuple[str, str, int | None, str], Finding] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)

    def record(
        self, kind: str, operation: str, status: int | None, title: str, example: str
    ) -> None:
        self.counts[kind] += 1
        key = (kind, operation, status, title)
        self.findings.setdefault(key, Finding(kind, operation, status, title, example))

    def summary(self, operations: int, seconds: float) -> str:
        answered = sum(self.statuses.values(), Counter())
        successes = sum(n for status, n in answered.items() if status < 400)
        refusals = sum(n for status, n in answered.items() if 400 <= status < 500)
        return (
            f"schemathesis: {self.cases} cases over {operations} operations in {seconds:.0f} s "
            f"({successes} successes, {refusals} refusals); server errors: "
            f"{self.counts['server error']}, schema violations: "
            f"{self.counts['schema violation']}, non-JSON errors: "
            f"{self.counts['non-JSON error']}"
        )


def _describe(case: Any, response: Any) -> str:
    sent = f"{case.method} {case.formatted_path} query={case.query!r} headers={case.headers!r}"
    body = "" if case.body is NOT_SET else f" body={case.body!r}"[:600]
    answer = response.content[:300].decode("utf-8", "replace")
    return f"{sent}{body}\n-> {response.status_code} {answer}"


def _kind(failure: Exception) -> str:
    if isinstance(failure, ServerError):
        return "server error"
    if isinstance(failure, CustomFailure):
        return "non-JSON error"
    return "schema violation"


class _Summary:
    """Adds the run's summary line to pytest's terminal summary."""

    def __init__(self, line: str) -> None:
        self.line = line

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_line(self.line)


@pytest.fixture
def in_process_app() -> Iterator[WSGIHandler]:
    """The project's WSGI handler, keeping the test's database connection across requests (as
    Django's test client does)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def live(django_user_model: Any) -> Live:
    user = django_user_model.objects.create_user(
        username="fuzz-alice", password=PASSWORD, email="fuzz-alice@example.com"
    )
    issued = api_keys.issue(user, name="fuzz")
    application, output = create_application(
        "confidential", "client-credentials", "--name=fuzz-service"
    )
    service = OAuthClient(application.client_id, printed_secret(output), application)
    return Live(user, issued.api_key.key_id, issued.secret, service, web_client("fuzz-web"))


def _takes_input(operation: Any) -> bool:
    """Whether the operation reads anything from the request: a body, parameters or
    credentials (the discovery documents and the JWKS read nothing)."""
    raw = operation.definition.raw
    return bool(
        raw.get("requestBody")
        or raw.get("parameters")
        or any(requirement for requirement in raw.get("security", []))
    )


def _strategy(operation: Any) -> Any:
    """Schemathesis' positive and negative cases; positive ones sent in a media type the
    operation does not take; and positive ones filled with live credentials."""
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    kinds = [positive.map(lambda case: ("positive", case))]
    if _takes_input(operation):
        negative = operation.as_strategy(GenerationMode.NEGATIVE)
        kinds.append(negative.map(lambda case: ("negative", case)))
    if operation.definition.raw.get("requestBody"):
        kinds.append(positive.map(lambda case: ("other media type", case)))
    if operation.label in VALID:
        variants = st.tuples(positive, st.integers(0, 11))
        kinds.append(variants.map(lambda drawn: (("valid", drawn[1]), drawn[0])))
    return st.one_of(kinds)


def test_every_operation_survives_fuzzing_and_answers_as_documented(
    in_process_app: WSGIHandler,
    live: Live,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``DJANGO_TOKENS_FUZZ_CASES`` generated requests across every operation of the schema: no
    5xx, every answer as documented, every error JSON, and each operation both accepts live
    credentials and refuses bad input."""
    started = time.monotonic()
    schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, in_process_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = [operation.label for operation in operations]
    tally = Tally(statuses={label: Counter() for label in labels})
    crashes: list[BaseException] = []

    def on_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
        crashes.append(sys.exc_info()[1] or RuntimeError("unknown"))

    got_request_exception.connect(on_exception)
    address = iter(range(1, 1 << 24))

    def exercise(operation: Any, drawn: tuple[Any, Any]) -> None:
        kind, case = drawn
        if isinstance(kind, tuple):
            VALID[operation.label](case, live, kind[1])
        elif kind == "other media type":
            _other_media_type(case)
        # Each case from an address of its own: the per-address failure budget would otherwise
        # turn every later answer, live credentials included, into a 429.
        number = next(address)
        remote = f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
        crashes.clear()
        tally.cases += 1
        try:
            response = case.call(environ_overrides={"REMOTE_ADDR": remote})
        except Exception as exc:
            tally.record("server error", operation.label, None, repr(exc)[:200], repr(case))
            return
        tally.statuses[operation.label][response.status_code] += 1
        # Live credentials are sent as clients send them, in some shapes the body's schema
        # leaves out (seed 001's credential headers): only generated cases must match it.
        generated = kind in ("positive", "negative")
        checks = GENERATED_CASE_CHECKS if generated else RESPONSE_CHECKS
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as group:
            for failure in group.exceptions:
                example = _describe(case, response)
                if crashes:
                    example += f"\n(raised {crashes[0]!r})"
                tally.record(
                    _kind(failure), operation.label, response.status_code, failure.title, example
                )

    def run(operation: Any, quota: int, seed: int) -> int:
        before = tally.cases

        @hypothesis.seed(seed)
        @settings(
            max_examples=quota,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(drawn=_strategy(operation))
        def fuzz(drawn: tuple[Any, Any]) -> None:
            exercise(operation, drawn)

        began = time.monotonic()
        with contextlib.suppress(hypothesis.errors.Unsatisfiable):  # nothing left to draw
            fuzz()
        tally.seconds[operation.label] += time.monotonic() - began
        return tally.cases - before

    try:
        active = list(operations)
        round_ = 0
        while tally.cases < TARGET_CASES and active:
            quota = math.ceil((TARGET_CASES - tally.cases) / len(active))
            exhausted = []
            for index, operation in enumerate(active):
                if run(operation, quota, SEED + round_ * 1000 + index) < quota:
                    exhausted.append(operation)  # every distinct case was sent
            active = [operation for operation in active if operation not in exhausted]
            round_ += 1
    finally:
        got_request_exception.disconnect(on_exception)

    line = tally.summary(len(operations), time.monotonic() - started)
    (tmp_path_factory.getbasetemp() / "fuzz-summary.txt").write_text(line + "\n")
    request.config.pluginmanager.register(_Summary(line), f"fuzz-summary-{id(tally)}")
    print(line)

    assert tally.cases >= TARGET_CASES, line
    report = "\n".join(
        f"{label}: {dict(statuses)} in {tally.seconds[label]:.1f} s"
        for label, statuses in tally.statuses.items()
    )
    report += "\n\n" + "\n\n".join(
        f"[{f.kind}] {f.operation} -> {f.status}: {f.title}\n{f.example}"
        for f in tally.findings.values()
    )
    if tally.findings:
        pytest.fail(f"{line}\n\n{report}", pytrace=False)
    for operation in operations:
        statuses = tally.statuses[operation.label]
        assert any(status < 300 for status in statuses), f"{operation.label}: {statuses}"
        if _takes_input(operation):
            assert any(400 <= status < 500 for status in statuses), (
                f"{operation.label} never refused: {statuses}"
            )
