#!/usr/bin/env bash
# Runs every example of docs/jwt.md against a real dotgit server: registers an openssl-made RSA
# key, mints a token with each example (shell/openssl, Python/PyJWT, JavaScript/jose, Rust) and
# calls the API with it. Run from anywhere: bash examples/jwt/check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=$(mktemp -d)
cleanup() { [[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cargo build -q -p dotgit-cli --bin dotgit --example mint_jwt
BIN=target/debug/dotgit
DATA="$work/data"
PORT=$((20000 + RANDOM % 20000))
"$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" 2>"$work/server.log" &
PID=$!
for _ in $(seq 100); do [[ -f "$DATA/tls-cert.pem" ]] && curl -s --cacert "$DATA/tls-cert.pem" "https://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done

echo 'example password' | "$BIN" admin create-account acme --data-dir "$DATA" >/dev/null

# the key pair, as in docs/jwt.md
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/private.pem" 2>/dev/null
openssl pkey -in "$work/private.pem" -pubout -out "$work/public.pem"
reg=$("$BIN" jwt-keys register --data-dir "$DATA" --account acme --name ci \
      --public-key "$work/public.pem" --scope repo:read --issuer https://ci.acme.example)
export KID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["kid"])' <<<"$reg")
export SUB=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["sub"])' <<<"$reg")
export ISS=https://ci.acme.example AUD="https://127.0.0.1:$PORT" PRIVATE_KEY="$work/private.pem"

# Python and JavaScript dependencies, installed fresh (nothing cached)
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "pyjwt[crypto]"
(cd "$work" && npm init -y >/dev/null && npm install -s jose >/dev/null)
cp examples/jwt/mint.mjs "$work/mint.mjs"

declare -A tokens
tokens[shell]=$(bash examples/jwt/mint.sh)
tokens[python]=$("$work/venv/bin/python" examples/jwt/mint.py)
tokens[javascript]=$(cd "$work" && node mint.mjs)
tokens[rust]=$(target/debug/examples/mint_jwt)

fail=0
for lang in shell python javascript rust; do
  out=$(curl -s --cacert "$DATA/tls-cert.pem" "https://127.0.0.1:$PORT/v1/user" -H "Authorization: Bearer ${tokens[$lang]}")
  if python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["credential"]["kind"]=="jwt", d' <<<"$out" 2>/dev/null; then
    echo "jwt example ($lang): ok"
  else
    echo "jwt example ($lang): FAILED: $out"; fail=1
  fi
done
exit $fail
