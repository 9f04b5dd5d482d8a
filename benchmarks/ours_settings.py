"""Settings of "ours" in the benchmark: the example project as it is, plus what both servers
share — the fast MD5 password hasher first (labelled in the results), the query-counting
middleware and two benchmark views (``benchmarks/ours_urls.py``) — and the app's default
claims: the example's claims hook (seed 001's customer-profile claims, one query per token)
is off, as the peers' tokens carry their libraries' standard claims only."""

from example_project.settings import *  # noqa: F403
from example_project.settings import DJANGO_TOKENS, MIDDLEWARE, PASSWORD_HASHERS

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
MIDDLEWARE = ["benchmarks.bench_common.QueryCountMiddleware", *MIDDLEWARE]
ROOT_URLCONF = "benchmarks.ours_urls"
DJANGO_TOKENS = {**DJANGO_TOKENS, "CLAIMS_HOOK": None}
