#!/usr/bin/env bash
# Exchange an API key for tokens with nothing but bash, openssl and curl.
# Usage:  KEY_ID=dtk_... SECRET=... examples/api_key_client.sh [BASE_URL]
set -euo pipefail
BASE_URL="${1:-http://127.0.0.1:8000}"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

now=$(date +%s)
header=$(printf '{"alg":"HS256","typ":"JWT","kid":"%s"}' "$KEY_ID" | b64url)
payload=$(printf '{"iat":%d,"exp":%d,"jti":"%s"}' "$now" "$((now + 60))" "$(openssl rand -hex 16)" | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)

curl -sS -X POST "$BASE_URL/auth/api-key" -H "Authorization: Bearer $header.$payload.$signature"
echo
