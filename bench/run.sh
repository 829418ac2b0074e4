#!/usr/bin/env bash
# dotgit load benchmark: builds release, starts dotgit on a fresh data dir, and measures routes
# side by side in one run — server pinned to CPU 0, wrk to CPU 1, keep-alive, interleaved
# rounds — then prints the median of the per-round ratios against the unauthenticated floor.
#
#   bash bench/run.sh            # full: 5 rounds x 10 s per scenario
#   bash bench/run.sh --smoke    # seconds: proves the instrument works (CI), figures not meaningful
#
# Only loopback addresses are used. Output: a table on stdout and bench/last-run.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=5; DURATION=10; CONNS=32; PROFILE=release
# smoke: prove the instrument works in seconds, on the debug build the tests already made
if [[ "${1:-}" == "--smoke" ]]; then ROUNDS=1; DURATION=2; CONNS=8; PROFILE=debug; fi

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)…" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
if [[ $PROFILE == release ]]; then cargo build --release -q -p dotgit-cli; else cargo build -q -p dotgit-cli; fi
BIN=target/$PROFILE/dotgit
DATA=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
cleanup() { [[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"; }
trap cleanup EXIT

CPUS=$(nproc)
pin_server=(); pin_load=()
if [[ $CPUS -ge 2 ]] && command -v taskset >/dev/null; then pin_server=(taskset -c 0); pin_load=(taskset -c 1); fi

echo 'bench password 1234' | $BIN admin create-account bench --data-dir "$DATA" >/dev/null
KEY=$($BIN keys create --account bench --scope repo:read --data-dir "$DATA")
# a budget large enough that the per-credential limit never trips during the run
DOTGIT_REQUEST_BUDGET_PER_HOUR=4000000000 RUST_LOG=warn \
  "${pin_server[@]}" $BIN serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" 2>"$DATA/server.log" &
PID=$!
for _ in $(seq 100); do curl -skf "https://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done
curl -skf -H "Authorization: Bearer $KEY" "https://127.0.0.1:$PORT/v1/user" >/dev/null

# wrk prints "Requests/sec: N" and a latency distribution with --latency
run() { # name, path, [header]
  local out
  if [[ -n "${3:-}" ]]; then
    out=$("${pin_load[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "$3" "https://127.0.0.1:$PORT$2")
  else
    out=$("${pin_load[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "https://127.0.0.1:$PORT$2")
  fi
  local rps p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/ {print $5}' <<<"$out"); errs=${errs:-0}
  echo "$1 $rps $p99 $errs"
}

to_us() { # wrk latency like 1.23ms / 850.00us / 1.2s → microseconds
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n }'
}

declare -a R_HELLO R_KEY P_HELLO P_KEY
for r in $(seq "$ROUNDS"); do
  read -r _ h_rps h_p99 h_err < <(run hello /livez)
  read -r _ k_rps k_p99 k_err < <(run apikey /v1/user "Authorization: Bearer $KEY")
  if [[ "$h_err" != 0 || "$k_err" != 0 ]]; then echo "non-2xx answers during the run (hello $h_err, key $k_err)" >&2; exit 1; fi
  R_HELLO+=("$h_rps"); R_KEY+=("$k_rps"); P_HELLO+=("$(to_us "$h_p99")"); P_KEY+=("$(to_us "$k_p99")")
  echo "round $r: hello ${h_rps} req/s (p99 $h_p99) | cached api key ${k_rps} req/s (p99 $k_p99)" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
ratios=(); pratios=()
for i in "${!R_HELLO[@]}"; do
  ratios+=("$(awk -v a="${R_KEY[$i]}" -v b="${R_HELLO[$i]}" 'BEGIN{printf "%.3f", a/b}')")
  pratios+=("$(awk -v a="${P_KEY[$i]}" -v b="${P_HELLO[$i]}" 'BEGIN{printf "%.3f", a/b}')")
done
THR=$(median "${ratios[@]}"); P99=$(median "${pratios[@]}")
MACHINE="$(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
{
  echo "| figure | value (median of $ROUNDS rounds, ${DURATION}s each, $CONNS connections) |"
  echo "|---|---|"
  echo "| hello (/livez, TLS, no auth) req/s | $(median "${R_HELLO[@]}") |"
  echo "| cached API key (/v1/user) req/s | $(median "${R_KEY[@]}") |"
  echo "| throughput ratio key / hello | $THR |"
  echo "| p99 ratio key / hello | $P99 |"
  echo
  echo "machine: $MACHINE; server pinned to CPU 0, wrk to CPU 1; $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee bench/last-run.md
