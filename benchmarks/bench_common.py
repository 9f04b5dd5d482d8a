"""Django pieces shared by both servers of the benchmark: the query-counting middleware, the
floor view and the identity view body. Loaded by the servers' settings and URLconfs only."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

#: The request header that asks for a query count, and the response header that carries it.
QUERY_COUNT_REQUEST_HEADER = "HTTP_X_BENCH_QUERIES"
QUERY_COUNT_RESPONSE_HEADER = "X-Bench-Queries"
#: Redis round trips of the request, when the server's default cache is Redis.
CACHE_COUNT_RESPONSE_HEADER = "X-Bench-Cache-Calls"


@contextlib.contextmanager
def _count_redis_round_trips() -> Iterator[list[int] | None]:
    """Counts redis-py commands (one round trip each) and pipeline executions (one for the
    whole pipeline) while the block runs. Sync workers serve one request at a time, so
    patching the classes for the duration of one request sees that request only."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if not backend.endswith("RedisCache"):
        yield None
        return
    from redis.client import Pipeline, Redis

    counter = [0]
    command, execute = Redis.execute_command, Pipeline.execute

    def counted_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return command(self, *args, **kwargs)

    def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return execute(self, *args, **kwargs)

    Redis.execute_command = counted_command  # type: ignore[method-assign]
    Pipeline.execute = counted_execute  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        Redis.execute_command = command  # type: ignore[method-assign]
        Pipeline.execute = execute  # type: ignore[method-assign]


class QueryCountMiddleware:
    """Counts the SQL statements of a request when it carries ``X-Bench-Queries`` and answers
    the count in the same response header. Requests without the header pass straight through,
    so the timed requests pay one dictionary lookup and nothing else.

    Counts what Django's ``CaptureQueriesContext`` counts on the default connection: every
    statement sent through a cursor, SAVEPOINT/RELEASE included, BEGIN/COMMIT not. When the
    default cache is Redis, its round trips are counted too (``X-Bench-Cache-Calls``).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if QUERY_COUNT_REQUEST_HEADER not in request.META:
            return self.get_response(request)
        count = 0

        def counter(execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with _count_redis_round_trips() as cache_calls, connection.execute_wrapper(counter):
            response = self.get_response(request)
        response[QUERY_COUNT_RESPONSE_HEADER] = str(count)
        if cache_calls is not None:
            response[CACHE_COUNT_RESPONSE_HEADER] = str(cache_calls[0])
        return response


class FloorView(APIView):
    """``GET /bench/floor``: a bare DRF view returning a constant — the cost of Django, DRF
    and the middleware stack with no authentication at all."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


def identity(request: Request) -> Response:
    """The body of every verify view, on both servers: who the token belongs to."""
    user: Any = request.user
    return Response({"id": user.pk, "username": user.username})
