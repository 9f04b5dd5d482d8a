"""Exchange an API key for tokens: sign a short-lived HS256 assertion, POST it to /auth/api-key.

Usage:  KEY_ID=dtk_... SECRET=... python examples/api_key_client.py [BASE_URL]
Needs PyJWT (``pip install pyjwt``); BASE_URL defaults to http://127.0.0.1:8000.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import jwt


def assertion(key_id: str, secret: str, lifetime: int = 60) -> str:
    now = int(time.time())
    claims = {"iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id})


def exchange(base_url: str, key_id: str, secret: str) -> dict:
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/auth/api-key",
        method="POST",
        headers={"Authorization": f"Bearer {assertion(key_id, secret)}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return {"status": error.code, **json.load(error)}


if __name__ == "__main__":
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    print(json.dumps(exchange(base, os.environ["KEY_ID"], os.environ["SECRET"]), indent=2))
