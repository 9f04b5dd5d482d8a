"""A bounded load on two servers of the example project, from a process of its own.

``python tests/loadclient.py CONFIG.json RESULT.json`` reads what to send from CONFIG (the
servers, credentials and keys prepared by the test that runs it, and the bounds: a duration
and counts), runs these scenarios side by side in threads, each over ``http.client``
connections to both servers, and writes what every scenario saw, with the load figures
(requests, duration, rate, latency percentiles, errors), to RESULT:

- ``replay``: lanes of two threads; each signs a fresh API-key assertion and sends it to both
  servers at the same moment (a barrier releases the pair).
- ``throttle``: once, a burst of wrong passwords for one username, spread over both servers
  and released together, then the right password on each server.
- ``revocation``: log in on one server, use the access token on the other, log out on the
  first, use the access token on the other again at once; password and API-key sessions.
- ``rotation``: a refresh-token chain per service (password, API key, OAuth 2.0), each
  refresh on the other server than the one before, each new access token used on the other.
- ``readers``: ``GET /api/me`` and the JWKS on both servers.

Clients come from distinct loopback addresses (``127.x.y.z``, all of them local on Linux), as
real clients come from many: the failure throttles count per address too, and the replay lanes
would otherwise exhaust one address's allowance within seconds. A 5xx answer or a failed
connection is an error; every scenario also reports its answers for the test to check.
Needs only the standard library and PyJWT.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt

#: Assertions a replay lane sends from one address before it moves to the next: each one
#: leaves one failure (its replay) on the address, well below the per-address limit.
ASSERTIONS_PER_ADDRESS = 8
#: The throttle burst starts this long into the run, so that it runs under the load, and
#: at least this far from the end of a throttle window, so that it is counted in one.
THROTTLE_START = 3.0
THROTTLE_WINDOW_MARGIN = 15.0
TIMEOUT = 30.0


@dataclass
class Reply:
    status: int  # 0: no answer (connection error or timeout)
    headers: dict[str, str]
    body: Any
    error: str = ""

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


class Recorder:
    """Every request's status and latency, and every error, across threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.errors: list[dict[str, Any]] = []

    def record(
        self, scenario: str, server: str, method: str, path: str, reply: Reply, seconds: float
    ) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.statuses[str(reply.status)] += 1
            if reply.status == 0 or reply.status >= 500:
                self.errors.append(
                    {
                        "scenario": scenario,
                        "server": server,
                        "request": f"{method} {path}",
                        "status": reply.status,
                        "error": reply.error or str(reply.body)[:300],
                    }
                )


class Endpoint:
    """Requests to one server from one loopback address, on one ``http.client`` connection
    that is reopened when the server closes it."""

    def __init__(self, recorder: Recorder, scenario: str, name: str, url: str, source: str) -> None:
        parts = urlsplit(url)
        self.recorder, self.scenario, self.name = recorder, scenario, name
        self.connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=TIMEOUT, source_address=(source, 0)
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        bearer: str | None = None,
    ) -> Reply:
        headers = {}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            raw = response.read()
            headers = {name.lower(): value for name, value in response.getheaders()}
            reply = Reply(response.status, headers, _parsed(raw))
        except (OSError, http.client.HTTPException) as exc:
            self.connection.close()
            reply = Reply(0, {}, None, f"{type(exc).__name__}: {exc}")
        self.recorder.record(
            self.scenario, self.name, method, path, reply, time.perf_counter() - started
        )
        return reply

    def close(self) -> None:
        self.connection.close()


def _parsed(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:300].decode(errors="replace")


def address(first: int, second: int, third: int) -> str:
    """A loopback address of its own for each client; octets from 1 to 254."""
    return f"127.{first}.{second % 254 + 1}.{third % 254 + 1}"


def sign_assertion(key_id: str, secret: str) -> str:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id})


class Run:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.servers: list[tuple[str, str]] = list(zip("ab", config["servers"], strict=True))
        self.recorder = Recorder()
        self.started = time.monotonic()
        self.deadline = self.started + float(config["duration"])
        self.results: dict[str, Any] = {}
        self.results_lock = threading.Lock()

    def going(self) -> bool:
        return time.monotonic() < self.deadline

    def endpoints(self, scenario: str, source: str) -> list[Endpoint]:
        """One endpoint per server, both from ``source``."""
        return [Endpoint(self.recorder, scenario, name, url, source) for name, url in self.servers]

    def report(self, scenario: str, entry: Any) -> None:
        with self.results_lock:
            self.results.setdefault(scenario, []).append(entry)

    # -- replay: each assertion sent to both servers at the same moment ---------------------

    def replay_lane(self, lane: int, key: dict[str, str], limit: int) -> None:
        barrier = threading.Barrier(2)
        slot: dict[str, Any] = {}
        replies: list[Reply | None] = [None, None]

        def side(which: int) -> None:
            sent = 0
            current_source, endpoints = "", []
            while True:
                if which == 0:
                    more = self.going() and sent < limit
                    slot["assertion"] = sign_assertion(**key) if more else None
                barrier.wait(timeout=TIMEOUT * 2)
                assertion = slot["assertion"]
                if assertion is None:
                    break
                source = address(10 + which, lane, sent // ASSERTIONS_PER_ADDRESS)
                if source != current_source:
                    for endpoint in endpoints:
                        endpoint.close()
                    current_source, endpoints = source, self.endpoints("replay", source)
                # The pair's two sides take turns at each server.
                endpoint = endpoints[(sent + which) % 2]
                replies[which] = endpoint.request("POST", "/auth/api-key", bearer=assertion)
                barrier.wait(timeout=TIMEOUT * 2)
                if which == 0:
                    pair = [(endpoints[(sent + side) % 2].name, replies[side]) for side in (0, 1)]
                    self.report(
                        "replay",
                        {
                            "lane": lane,
                            "answers": [
                                {
                                    "server": name,
                                    "status": reply.status,
                                    "error": reply.field("error"),
                                    "session_state": reply.field("session_state"),
                                }
                                for name, reply in pair
                                if reply is not None
                            ],
                        },
                    )
                sent += 1
            for endpoint in endpoints:
                endpoint.close()

        threads = [threading.Thread(target=side, args=(which,)) for which in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # -- throttle: wrong passwords spread over both servers ---------------------------------

    def throttle_burst(self, setting: dict[str, Any]) -> None:
        time.sleep(THROTTLE_START)
        window = int(setting["window"])
        remaining = window - time.time() % window
        if remaining < THROTTLE_WINDOW_MARGIN:
            time.sleep(remaining + 0.5)
        attempts = int(setting["attempts"])
        barrier = threading.Barrier(attempts)
        wrong = {"username": setting["username"], "password": setting["wrong_password"]}
        began = time.time()

        def attempt(index: int) -> None:
            endpoint = self.endpoints("throttle", address(20, 0, index))[index % 2]
            barrier.wait(timeout=TIMEOUT)
            reply = endpoint.request("POST", "/api/token", json_body=wrong)
            endpoint.close()
            self.report("throttle", _throttle_entry(endpoint.name, reply))

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        right = {"username": setting["username"], "password": setting["password"]}
        for endpoint in self.endpoints("throttle", address(20, 1, 0)):
            reply = endpoint.request("POST", "/api/token", json_body=right)
            endpoint.close()
            self.report("throttle_right_password", _throttle_entry(endpoint.name, reply))
        with self.results_lock:
            self.results["throttle_window"] = [began, time.time()]

    # -- revocation: log out on one server, refused on the other at once -------------------

    def revocation_lane(self, setting: dict[str, Any]) -> None:
        endpoints = self.endpoints("revocation", address(30, 0, 0))
        rounds = 0
        while self.going() and rounds < int(setting["max_rounds"]):
            here, there = endpoints[rounds // 2 % 2], endpoints[1 - rounds // 2 % 2]
            service = ("password", "api_key")[rounds % 2]
            if service == "password":
                login = here.request("POST", "/api/token", json_body=setting["credentials"])
                logout_path, refresh_path = "/api/token/logout", "/api/token/refresh"
            else:
                key = setting["api_key"]
                login = here.request("POST", "/auth/api-key", bearer=sign_assertion(**key))
                logout_path, refresh_path = "/auth/logout", "/auth/refresh"
            entry: dict[str, Any] = {
                "service": service,
                "logged_in_on": here.name,
                "login": login.status,
            }
            access, refresh = login.field("access_token"), login.field("refresh_token")
            if access and refresh:
                before = there.request("GET", "/api/me", bearer=access)
                logout = here.request("POST", logout_path, bearer=access)
                after = there.request("GET", "/api/me", bearer=access)
                refreshed = there.request(
                    "POST", refresh_path, json_body={"refresh_token": refresh}
                )
                entry.update(
                    session=before.field("session"),
                    before=before.status,
                    logout=logout.status,
                    after=after.status,
                    after_error=after.field("detail") or after.field("error"),
                    refresh=refreshed.status,
                )
            self.report("revocation", entry)
            rounds += 1

    # -- rotation: a refresh chain per service, alternating servers ------------------------

    def rotation_lane(self, service: str, setting: dict[str, Any]) -> None:
        endpoints = self.endpoints("rotation", address(40, len(service), 0))
        first = endpoints[0]
        if service == "password":
            start = first.request("POST", "/api/token", json_body=setting["credentials"])
        elif service == "api_key":
            start = first.request("POST", "/auth/api-key", bearer=sign_assertion(**setting["key"]))
        else:
            start = Reply(200, {}, {"refresh_token": setting["refresh_token"]})
        chain: dict[str, Any] = {"service": service, "start": start.status, "steps": []}
        refresh_token = start.field("refresh_token")
        step = 0
        while refresh_token and self.going() and step < int(setting["max_steps"]):
            here, there = endpoints[(step + 1) % 2], endpoints[step % 2]
            if service == "password":
                reply = here.request(
                    "POST", "/api/token/refresh", json_body={"refresh_token": refresh_token}
                )
            elif service == "api_key":
                reply = here.request(
                    "POST", "/auth/refresh", json_body={"refresh_token": refresh_token}
                )
            else:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": setting["client_id"],
                }
                reply = here.request("POST", "/oauth2/token", form=form)
            record: dict[str, Any] = {"server": here.name, "status": reply.status}
            if reply.status == 200:
                refresh_token = reply.field("refresh_token")
                used = there.request("GET", "/api/me", bearer=reply.field("access_token"))
                record.update(used_on=there.name, me=used.status, session=used.field("session"))
            else:
                record["error"] = reply.field("error")
                refresh_token = None
            chain["steps"].append(record)
            step += 1
        chain["final_refresh_token"] = refresh_token
        self.report("rotation", chain)

    # -- readers: verification on both servers ----------------------------------------------

    def reader(self, index: int, setting: dict[str, Any]) -> None:
        endpoints = self.endpoints("readers", address(50, index, 0))
        reads = 0
        unexpected = []
        while self.going() and reads < int(setting["max_reads"]):
            endpoint = endpoints[reads % 2]
            if reads % 4 == 3:
                reply = endpoint.request("GET", "/.well-known/jwks.json")
            else:
                reply = endpoint.request("GET", "/api/me", bearer=setting["access_token"])
            if reply.status != 200:
                unexpected.append({"server": endpoint.name, "status": reply.status})
            reads += 1
        self.report("readers", {"reads": reads, "unexpected": unexpected})

    # -- the run --------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        config = self.config
        replay = config["replay"]
        work: list[Callable[[], None]] = [
            partial(self.replay_lane, lane, key, int(replay["max"]))
            for lane, key in enumerate(replay["keys"])
        ]
        work.append(partial(self.throttle_burst, config["throttle"]))
        work.append(partial(self.revocation_lane, config["revocation"]))
        work += [partial(self.rotation_lane, *item) for item in config["rotation"].items()]
        readers = config["readers"]
        work += [partial(self.reader, index, readers) for index in range(int(readers["threads"]))]
        threads = [threading.Thread(target=job) for job in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - self.started
        latencies = sorted(self.recorder.latencies)
        total = len(latencies)
        return {
            **self.results,
            "load": {
                "requests": total,
                "duration_s": round(elapsed, 2),
                "requests_per_s": round(total / elapsed, 1) if elapsed else 0.0,
                "latency_ms": {
                    "p50": _percentile(latencies, 0.50),
                    "p90": _percentile(latencies, 0.90),
                    "p99": _percentile(latencies, 0.99),
                    "max": _percentile(latencies, 1.0),
                },
                "statuses": dict(sorted(self.recorder.statuses.items())),
                "errors": len(self.recorder.errors),
                # Threads sending all along; the throttle burst adds its own for a moment.
                "client_threads": len(threads) - 1 + len(config["replay"]["keys"]),
            },
            "errors": self.recorder.errors[:50],
        }


def _throttle_entry(server: str, reply: Reply) -> dict[str, Any]:
    return {
        "server": server,
        "status": reply.status,
        "error": reply.field("error"),
        "retry_after": reply.headers.get("retry-after"),
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return round(ordered[round(fraction * (len(ordered) - 1))] * 1000, 1)


def main(config_path: str, result_path: str) -> None:
    with open(config_path) as config_file:
        config = json.load(config_file)
    results = Run(config).run()
    with open(result_path, "w") as result_file:
        json.dump(results, result_file)


if __name__ == "__main__":
    main(*sys.argv[1:3])
