"""The load generator of ``benchmarks/run.py``: a few client processes, each with one HTTP
connection to 127.0.0.1 (``http.client``, HTTP/1.1 keep-alive; gunicorn's sync workers close
the connection after each answer, and ``http.client`` opens the next one by itself).

Every worker runs the same scenario in a closed loop — send, read the whole answer, send the
next — from a common start time: warm-up requests first (not recorded), then every request
that *completes* inside the measured window is counted and its latency kept. Any answer that
is not 2xx, and any connection error, is an error. Stateful scenarios (refresh-token chains)
keep their state per worker, so no two workers ever present the same token.

The parent talks to the workers through pipes: ``prepare`` (build the scenario, e.g. obtain
the first refresh token), ``run`` (a timed block), ``run_until_halted`` (a block that runs
until the parent says ``halt``: the load kept up while something else happens, with each
request's completion time) and ``probe`` (a few requests that ask the server for its query
count, see ``bench_common.QueryCountMiddleware``).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import itertools
import json
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlencode

HOST = "127.0.0.1"
TIMEOUT = 60.0
QUERY_HEADER = "X-Bench-Queries"
CACHE_HEADER = "X-Bench-Cache-Calls"

Request = tuple[str, str, bytes | None, dict[str, str]]


def json_request(path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return (
        "POST",
        path,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", **(headers or {})},
    )


def basic_auth(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


class Scenario:
    """One kind of request. ``spec`` is a plain dict (it crosses process boundaries)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.needs_prepare = False

    def prepare(self, send: Any) -> None:
        """Obtain whatever state the requests need (untimed)."""

    def request(self) -> Request:
        raise NotImplementedError

    def handle(self, body: bytes) -> None:
        """Take what the next request needs from a successful answer."""

    def failed(self) -> None:
        """After an error: start over (a chain's token may have been spent)."""


class Get(Scenario):
    """``GET path``, with ``Authorization: Bearer <token>`` when the spec has a token; with
    ``tokens``, a different one each request, in turn (each client process starts elsewhere
    in the list)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        tokens = spec.get("tokens") or ([spec["token"]] if spec.get("token") else [])
        start = os.getpid() * 7919 % len(tokens) if tokens else 0
        self.tokens = itertools.cycle(tokens[start:] + tokens[:start]) if tokens else None

    def request(self) -> Request:
        headers = {"Accept": "application/json"}
        if self.tokens is not None:
            headers["Authorization"] = f"Bearer {next(self.tokens)}"
        return ("GET", self.spec["path"], None, headers)


class PostJson(Scenario):
    """``POST path`` with a fixed JSON body (password issuance)."""

    def request(self) -> Request:
        return json_request(self.spec["path"], self.spec["body"], {"Accept": "application/json"})


class ClientCredentials(Scenario):
    """``POST path`` with ``grant_type=client_credentials`` and HTTP Basic client auth."""

    def request(self) -> Request:
        body = urlencode({"grant_type": "client_credentials", "scope": self.spec["scope"]})
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Authorization": basic_auth(self.spec["client_id"], self.spec["client_secret"]),
        }
        return ("POST", self.spec["path"], body.encode(), headers)


class RefreshChain(Scenario):
    """Refresh with rotation: each answer's new refresh token is the next request's. The first
    one comes from the password endpoint (``obtain_path``, untimed); so does a new one after
    an error."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.token: str | None = None
        self.needs_prepare = True

    def prepare(self, send: Any) -> None:
        status, body = send(*json_request(self.spec["obtain_path"], self.spec["obtain_body"]))
        if not 200 <= status < 300:
            raise RuntimeError(f"obtaining a refresh token: {status} {body[:200]!r}")
        self.token = json.loads(body)[self.spec["field_out"]]
        self.needs_prepare = False

    def request(self) -> Request:
        body = {self.spec["field_in"]: self.token}
        return json_request(self.spec["path"], body, {"Accept": "application/json"})

    def handle(self, body: bytes) -> None:
        self.token = json.loads(body)[self.spec["field_out"]]

    def failed(self) -> None:
        self.needs_prepare = True


class ApiKeyAssertion(Scenario):
    """``POST /auth/api-key`` with a fresh HS256 assertion (new ``jti``) per request; the
    assertion is signed before the request's clock starts."""

    def request(self) -> Request:
        import jwt

        now = int(time.time())
        assertion = jwt.encode(
            {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
            self.spec["secret"],
            algorithm="HS256",
            headers={"kid": self.spec["key_id"]},
        )
        headers = {"Authorization": f"Bearer {assertion}", "Accept": "application/json"}
        return ("POST", self.spec["path"], b"", headers)


KINDS: dict[str, type[Scenario]] = {
    "get": Get,
    "post_json": PostJson,
    "client_credentials": ClientCredentials,
    "refresh_chain": RefreshChain,
    "api_key": ApiKeyAssertion,
}


class Client:
    """One keep-alive connection per port, reopened after the server closes it."""

    def __init__(self) -> None:
        self.connections: dict[int, http.client.HTTPConnection] = {}

    def sender(self, port: int) -> Any:
        def send(
            method: str, path: str, body: bytes | None, headers: dict[str, str]
        ) -> tuple[int, bytes]:
            status, data, _ = self.send(port, method, path, body, headers)
            return status, data

        return send

    def send(
        self, port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, http.client.HTTPResponse]:
        connection = self.connections.get(port)
        if connection is None:
            connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
            self.connections[port] = connection
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            raise
        return response.status, data, response

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


def _run(
    client: Client,
    scenario: Scenario,
    start_at: float,
    measure_at: float,
    end_at: float,
    stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """The closed loop of one worker. ``stop`` (polled between requests) ends it before
    ``end_at``; the result's ``completed`` holds each measured request's completion time
    (``time.monotonic()``, one clock for every process of the machine) and ``failed`` each
    error's."""
    port = scenario.spec["port"]
    send = client.sender(port)
    latencies: list[float] = []
    completed: list[float] = []
    failed: list[float] = []
    errors = 0
    samples: list[str] = []
    time.sleep(max(0.0, start_at - time.monotonic()))
    while time.monotonic() < end_at:
        if stop is not None and stop():
            break
        if scenario.needs_prepare:
            try:
                scenario.prepare(send)
            except Exception as exc:
                errors += 1
                if len(samples) < 3:
                    samples.append(f"prepare: {exc}"[:300])
                time.sleep(0.05)
                continue
        method, path, body, headers = scenario.request()
        started = time.perf_counter()
        try:
            status, data, _ = client.send(port, method, path, body, headers)
            ok = 200 <= status < 300
            detail = f"{status} {data[:200]!r}"
        except (OSError, http.client.HTTPException) as exc:
            ok, data, detail = False, b"", f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        done = time.monotonic()
        if ok:
            try:
                scenario.handle(data)
            except (ValueError, KeyError) as exc:
                ok, detail = False, f"unexpected answer: {exc!r} {data[:200]!r}"
        if not ok:
            scenario.failed()
        if measure_at <= done < end_at:
            if ok:
                latencies.append(elapsed)
                completed.append(done)
            else:
                errors += 1
                failed.append(done)
                if len(samples) < 3:
                    samples.append(detail[:300])
    return {
        "latencies": latencies,
        "completed": completed,
        "failed": failed,
        "errors": errors,
        "error_samples": samples,
    }


def _probe(client: Client, scenario: Scenario, count: int) -> dict[str, Any]:
    port = scenario.spec["port"]
    send = client.sender(port)
    queries: list[int | None] = []
    cache_calls: list[int | None] = []
    statuses: list[int] = []
    for _ in range(count):
        if scenario.needs_prepare:
            scenario.prepare(send)
        method, path, body, headers = scenario.request()
        status, data, response = client.send(
            port, method, path, body, {**headers, QUERY_HEADER: "1"}
        )
        statuses.append(status)
        header = response.getheader(QUERY_HEADER)
        queries.append(int(header) if header is not None else None)
        header = response.getheader(CACHE_HEADER)
        cache_calls.append(int(header) if header is not None else None)
        if 200 <= status < 300:
            scenario.handle(data)
        else:
            scenario.failed()
    return {"queries": queries, "cache_calls": cache_calls, "statuses": statuses}


def worker_main(pipe: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    client = Client()
    scenarios: dict[str, Scenario] = {}
    try:
        while True:
            message = pipe.recv()
            command = message[0]
            if command == "stop":
                return
            if command == "halt":  # an open-ended block that had already reached its limit
                continue
            try:
                if command == "prepare":
                    _, key, spec = message
                    scenario = KINDS[spec["kind"]](spec)
                    scenarios[key] = scenario
                    if scenario.needs_prepare:
                        scenario.prepare(client.sender(spec["port"]))
                    pipe.send(("ok", None))
                elif command == "run":
                    _, key, start_at, measure_at, end_at = message
                    pipe.send(("ok", _run(client, scenarios[key], start_at, measure_at, end_at)))
                elif command == "run_until_halted":
                    _, key, start_at, measure_at, end_at = message
                    result = _run(
                        client, scenarios[key], start_at, measure_at, end_at, stop=pipe.poll
                    )
                    # The message that stopped the loop: "halt", or "stop" if the parent is
                    # closing the pool instead.
                    if pipe.poll() and pipe.recv()[0] == "stop":
                        return
                    pipe.send(("ok", result))
                elif command == "probe":
                    _, key, count = message
                    pipe.send(("ok", _probe(client, scenarios[key], count)))
                else:
                    pipe.send(("error", f"unknown command {command!r}"))
            except Exception as exc:
                pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        client.close()


class LoadPool:
    """``size`` worker processes; a context manager that always stops them."""

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for index in range(size):
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main, args=(child,), name=f"bench-load-{index}", daemon=True
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def __enter__(self) -> LoadPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _gather(self, pipes: list[Connection]) -> list[Any]:
        results = []
        for pipe in pipes:
            status, payload = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"load worker: {payload}")
            results.append(payload)
        return results

    def prepare(self, key: str, spec: dict[str, Any]) -> None:
        for pipe in self.pipes:
            pipe.send(("prepare", key, spec))
        self._gather(self.pipes)

    def run(self, key: str, warmup: float, duration: float) -> dict[str, Any]:
        start_at = time.monotonic() + 0.2
        measure_at = start_at + warmup
        end_at = measure_at + duration
        for pipe in self.pipes:
            pipe.send(("run", key, start_at, measure_at, end_at))
        results = self._gather(self.pipes)
        latencies = [latency for result in results for latency in result["latencies"]]
        return {
            "duration": duration,
            "latencies": latencies,
            "errors": sum(result["errors"] for result in results),
            "error_samples": [sample for result in results for sample in result["error_samples"]],
        }

    def start(self, key: str, warmup: float, limit: float) -> float:
        """Starts an open-ended block: the workers loop until :meth:`halt` (or ``limit``
        seconds). Returns when the measured window opens (``time.monotonic()``)."""
        start_at = time.monotonic() + 0.2
        measure_at = start_at + warmup
        for pipe in self.pipes:
            pipe.send(("run_until_halted", key, start_at, measure_at, measure_at + limit))
        return measure_at

    def halt(self) -> dict[str, Any]:
        """Ends the block :meth:`start` began: every completed request's latency and
        completion time, and the errors'."""
        for pipe in self.pipes:
            pipe.send(("halt",))
        results = self._gather(self.pipes)
        return {
            "latencies": [lat for result in results for lat in result["latencies"]],
            "completed": [done for result in results for done in result["completed"]],
            "failed": [done for result in results for done in result["failed"]],
            "errors": sum(result["errors"] for result in results),
            "error_samples": [s for result in results for s in result["error_samples"]],
        }

    def probe(self, key: str, count: int) -> dict[str, Any]:
        self.pipes[0].send(("probe", key, count))
        return self._gather(self.pipes[:1])[0]

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        deadline = time.monotonic() + 5
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(2)
            if process.is_alive():
                process.kill()
                process.join(1)
        for pipe in self.pipes:
            pipe.close()
