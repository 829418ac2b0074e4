#!/usr/bin/env bash
# Mint an RS256 JWT for dotgit with nothing but openssl.
# Needs: PRIVATE_KEY (PEM file), KID, ISS, SUB, AUD; optional SCOPE (default "repo:read").
set -euo pipefail
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"%s"}' "$KID" | b64url)
payload=$(printf '{"iss":"%s","sub":"%s","aud":"%s","iat":%d,"exp":%d,"scope":"%s"}' \
  "$ISS" "$SUB" "$AUD" "$now" "$((now + 600))" "${SCOPE:-repo:read}" | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$PRIVATE_KEY" -binary | b64url)
echo "$header.$payload.$signature"
