#!/usr/bin/env bash
# dotgit load benchmark: builds release, starts dotgit on fresh data dirs, and measures routes
# side by side in one run — server pinned to CPU 0, wrk to CPU 1, keep-alive, interleaved
# rounds — then prints medians of per-round ratios.
#
#   bash bench/run.sh            # full: 5 rounds x 10 s per scenario
#   bash bench/run.sh --smoke    # seconds, on the debug build: proves the instrument works (CI)
#
# Scenarios: hello (/livez, TLS, no auth: the floor); cached API key (/v1/user, full pipeline,
# every success audited); the same with success auditing off (a second server); a 401 (bad
# key) and a 429 (source over its failure budget). Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-5}; DURATION=${BENCH_SECONDS:-10}; CONNS=32; PROFILE=release
if [[ "${1:-}" == "--smoke" ]]; then ROUNDS=1; DURATION=2; CONNS=8; PROFILE=debug; fi

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)…" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
if [[ $PROFILE == release ]]; then cargo build --release -q -p dotgit-cli; else cargo build -q -p dotgit-cli; fi
BIN=target/$PROFILE/dotgit
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

pin_server=(); pin_load=()
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then pin_server=(taskset -c 0); pin_load=(taskset -c 1); fi

start() { # name audit_success failure_limit → sets PORT_<name>, KEY_<name>
  local name=$1 data="$WORK/$1" port=$((20000 + RANDOM % 20000))
  echo 'bench password 1234' | $BIN admin create-account bench --data-dir "$data" >/dev/null
  local key; key=$($BIN keys create --account bench --scope repo:read --data-dir "$data")
  DOTGIT_REQUEST_BUDGET_PER_HOUR=4000000000 DOTGIT_AUDIT_AUTH_SUCCESS=$2 DOTGIT_AUTH_FAILURE_LIMIT=$3 RUST_LOG=warn \
    "${pin_server[@]}" $BIN serve --data-dir "$data" --listen "127.0.0.1:$port" 2>"$data.log" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -skf "https://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.1; done
  printf -v "PORT_$name" '%s' "$port"; printf -v "KEY_$name" '%s' "$key"
}
start on true 1000000000
start off false 1000000000
start limited true 1
# trip the limiter of the third server for 127.0.0.1
curl -sk -o /dev/null -H "Authorization: Bearer dg_nope" "https://127.0.0.1:$PORT_limited/v1/user"

run() { # port path [header] → "rps p99 non2xx requests"
  local out
  if [[ -n "${3:-}" ]]; then
    out=$("${pin_load[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "$3" "https://127.0.0.1:$1$2")
  else
    out=$("${pin_load[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "https://127.0.0.1:$1$2")
  fi
  local rps p99 errs reqs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/ {print $5}' <<<"$out"); errs=${errs:-0}
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$rps $p99 $errs $reqs"
}
to_us() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }

declare -a H K KOFF E401 E429 RK RKP RAUD R401
AUDITED_REQUESTS=0
for r in $(seq "$ROUNDS"); do
  read -r h_rps h_p99 h_err _ < <(run "$PORT_on" /livez)
  read -r k_rps k_p99 k_err k_n < <(run "$PORT_on" /v1/user "Authorization: Bearer $KEY_on")
  read -r o_rps _ o_err _ < <(run "$PORT_off" /v1/user "Authorization: Bearer $KEY_off")
  read -r f_rps _ _ _ < <(run "$PORT_on" /v1/user "Authorization: Bearer dg_abcdefghijABCDEFGHIJ01234567892C2O59")
  read -r l_rps _ _ _ < <(run "$PORT_limited" /v1/user "Authorization: Bearer $KEY_limited")
  if [[ "$h_err" != 0 || "$k_err" != 0 || "$o_err" != 0 ]]; then echo "non-2xx answers where none were expected" >&2; exit 1; fi
  AUDITED_REQUESTS=$((AUDITED_REQUESTS + k_n))
  H+=("$h_rps"); K+=("$k_rps"); KOFF+=("$o_rps"); E401+=("$f_rps"); E429+=("$l_rps")
  RK+=("$(ratio "$k_rps" "$h_rps")"); RKP+=("$(ratio "$(to_us "$k_p99")" "$(to_us "$h_p99")")")
  RAUD+=("$(ratio "$k_rps" "$o_rps")"); R401+=("$(ratio "$l_rps" "$f_rps")")
  echo "round $r: hello $h_rps | key $k_rps (p99 $k_p99 vs $h_p99) | key, audit off $o_rps | 401 $f_rps | 429 $l_rps req/s" >&2
done

# every audited request's event is written: count them once the writer has drained
sleep 1
WRITTEN=$($BIN audit export --data-dir "$WORK/on" 2>/dev/null | grep -c '"auth.succeeded"' || true)

MACHINE="$(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
{
  echo "| figure | median of $ROUNDS rounds (${DURATION} s each, $CONNS connections) | target |"
  echo "|---|---|---|"
  echo "| hello (/livez over TLS, no auth) req/s | $(median "${H[@]}") | floor |"
  echo "| cached API key (/v1/user, audited) req/s | $(median "${K[@]}") | |"
  echo "| cached API key / hello | $(median "${RK[@]}")x | >= 0.85x |"
  echo "| cached API key p99 / hello p99 | $(median "${RKP[@]}")x | <= 1.5x |"
  echo "| audit on / audit off (cached key) | $(median "${RAUD[@]}")x | >= 0.90x |"
  echo "| 429 (blocked source) / 401 (unknown key) throughput | $(median "${R401[@]}")x | > 1x (429 cheaper) |"
  echo "| audited requests answered / auth.succeeded events written | $AUDITED_REQUESTS / $WRITTEN | equal |"
  echo
  echo "machine: $MACHINE; server pinned to CPU 0, wrk to CPU 1; $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee bench/last-run.md
if [[ "$WRITTEN" -lt "$AUDITED_REQUESTS" ]]; then
  echo "audit events missing: $WRITTEN written for $AUDITED_REQUESTS audited requests" >&2
  exit 1
fi
