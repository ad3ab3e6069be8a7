#!/usr/bin/env bash
# The whole benchmark in one command: release build, a BowChat server with the
# documented settings on a fresh data folder, then every scenario, each beside
# the built-in ack server (the ceiling) in the same run where a bar is a ratio
# to it: seed (1000 users, one auction), spread (1000 users over 64
# auctions), the open-loop ramp, chat fan-out, 20,000 idle connections.
# Results, JSON and SVG charts go to target/bench/; the summary at the end
# prints every bar with "met" or "missed". About 8 minutes. The load average
# is recorded beside every run because other work on the machine distorts the
# timings.
#
#   bash loadtest/bench.sh            # everything
#   BENCH_SCALE=0.2 bash loadtest/bench.sh   # smaller users/rates (quick check)
#   bash loadtest/bench.sh soak [MINUTES] [BIDS_PER_SEC]
#                                     # only the soak (30 min, 1000 bids/s by
#                                     # default; not part of "everything")
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/bench"
PORT="${BENCH_PORT:-18090}"
SCALE="${BENCH_SCALE:-1}"
URL="http://127.0.0.1:$PORT"
DATA="$(mktemp -d /tmp/bowchat-bench.XXXXXX)"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.svg "$OUT"/runs.txt

echo "== building (release)" >&2
cargo build --release -q -p bowchat -p bowchat-loadtest
# Every connection is a file descriptor, in the server and in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

# Cheap password hashing so thousands of users register quickly; the per-user
# rate and per-IP connection limits raised because every virtual user comes
# from this one IP and bids as fast as it gets answers; for the same reason the
# per-IP login and registration throttles are off (the per-account one stays).
BOWCHAT_AUTH__ARGON2_MEMORY_KIB=1024 BOWCHAT_AUTH__ARGON2_ITERATIONS=1 \
BOWCHAT_AUTH__THROTTLE__IP__FREE_ATTEMPTS=0 BOWCHAT_AUTH__THROTTLE__REGISTER__FREE_ATTEMPTS=0 \
BOWCHAT_GATEWAY__USER_RATE_PER_SEC=100000 BOWCHAT_GATEWAY__USER_RATE_BURST=100000 \
BOWCHAT_GATEWAY__MAX_CONNECTIONS_PER_IP=40000 BOWCHAT_LOG__LEVEL=warn \
  target/release/bowchat serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" \
  >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$URL/readyz" >/dev/null

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpus: $(nproc)  memory: $(free -g | awk '/Mem:/ {print $2}') GiB  kernel: $(uname -r)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
} | tee "$OUT/machine.txt"

LT=(target/release/bowchat-loadtest --url "$URL" --out "$OUT")
scaled() { awk -v v="$1" -v s="$SCALE" 'BEGIN { x = v * s; if (x < 1) x = 1; printf "%d", x }'; }

run() {
  local name="$1"; shift
  echo "== $name  (load average before: $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/runs.txt" >&2
  "${LT[@]}" "$@" | tee -a "$OUT/runs.txt"
  echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/runs.txt" >&2
}

if [ "${1:-}" = soak ]; then
  run soak soak --minutes "${2:-30}" --rate "${3:-1000}" --connections 100 --server-pid "$SERVER_PID"
  if command -v jq >/dev/null; then
    jq -r '"soak: \(.extra.load.minutes) min at \(.extra.load.bidsPerSec) bids/s: answers/s \(.answersPerSec), failed \(.failed)/\(.answered + .failed), p99 \(.latencyMs.p99) ms; RSS \(.extra.footprint.rssMiBFirst) -> \(.extra.footprint.rssMiBLast) MiB (slope \(.extra.footprint.rssSlopeMiBPerHour) MiB/h, second half \(.extra.footprint.rssSlopeMiBPerHourSecondHalf)), anonymous \(.extra.footprint.rssAnonMiBFirst) -> \(.extra.footprint.rssAnonMiBLast) MiB (slope \(.extra.footprint.rssAnonSlopeMiBPerHour) MiB/h, second half \(.extra.footprint.rssAnonSlopeMiBPerHourSecondHalf)), after the load \(.extra.footprint.rssMiBAfterLoad) MiB (anonymous \(.extra.footprint.rssAnonMiBAfterLoad)), open files \(.extra.footprint.openFdsFirst) -> \(.extra.footprint.openFdsLast) (slope \(.extra.footprint.openFdsSlopePerHour)/h); side load \(.extra.sideLoad)"' "$OUT/soak.json"
    jq -r '.extra.minutes[] | "  minute \(.minute): \(.answers) answers, \(.failures) failures, p50 \(.latencyMs.p50) p95 \(.latencyMs.p95) p99 \(.latencyMs.p99) max \(.latencyMs.max) ms"' "$OUT/soak.json"
  fi
  exit 0
fi

run seed seed --scale "$SCALE" --ceiling
run spread spread --scale "$SCALE" --auctions 64 --ceiling
run ramp ramp --connections "$(scaled 200)" --from-rate "$(scaled 500)" --to-rate "$(scaled 120000)" --secs 30 --ceiling
run chat chat --rooms "$(scaled 20)" --members 25 --room-rate 10 --secs 20
# Every connection is a descriptor of the server, which needs a few dozen of
# its own: the idle count stays that far under the open-file limit.
IDLE=$(scaled 20000)
FD_LIMIT=$(ulimit -n)
if [ "$IDLE" -gt $((FD_LIMIT - 100)) ]; then
  echo "idle: open-file limit $FD_LIMIT; $((FD_LIMIT - 100)) connections instead of $IDLE" | tee -a "$OUT/runs.txt" >&2
  IDLE=$((FD_LIMIT - 100))
fi
run idle idle --count "$IDLE" --hold-secs 10 --server-pid "$SERVER_PID"

echo
echo "== results (JSON and SVG in $OUT)"
cat "$OUT/machine.txt"
if command -v jq >/dev/null; then
  for f in seed ceiling spread spread-ceiling ramp ramp-ceiling chat idle; do
    [ -f "$OUT/$f.json" ] || continue
    jq -r '"\(.scenario): answers/s \(.answersPerSec) (peak \(.peakAnswersPerSec)), failed \(.failed)/\(.answered + .failed), p50 \(.latencyMs.p50) ms, p95 \(.latencyMs.p95) ms, p99 \(.latencyMs.p99) ms"' "$OUT/$f.json"
  done
  for f in seed spread; do
    jq -r '"\(.scenario) verification mismatches: \(.extra.verification.mismatches | length) of \(.extra.verification.acknowledgedBids) acknowledged bids"' "$OUT/$f.json"
  done
  jq -r '"ramp breaks at: \(.extra.breaksAt.offeredPerSec // "no break") offered/s (ack server: \(.extra.ceiling.breaksAt.offeredPerSec // "no break")); max answers/s before: \(.extra.maxAnswersPerSecBeforeBreak)"' "$OUT/ramp.json"
  jq -r '"chat fan-out: \(.extra.fanOut) ; sends: \(.extra.sends.sent) sent, p99 \(.extra.sends.latencyMs.p99) ms"' "$OUT/chat.json"
  jq -r '"idle: \(.extra.idle.held) of \(.extra.idle.requested) held, \(.extra.idle.rssBytesPerConnection) bytes RSS per connection"' "$OUT/idle.json"
  echo
  echo "== bars (ratios to the ack server in this run)"
  bar() { # name value op limit
    awk -v n="$1" -v v="$2" -v op="$3" -v l="$4" 'BEGIN {
      ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0);
      printf "%-44s %10s %s %-8s %s\n", n, v, op, l, (v == "" || v == "null") ? "missed (no figure)" : (ok ? "met" : "missed") }'
  }
  bar "seed answers/s / ceiling" "$(jq -r .extra.ratioToCeiling "$OUT/seed.json")" ">=" 0.5
  bar "seed p99 / ceiling p99" "$(jq -r .extra.p99RatioToCeiling "$OUT/seed.json")" "<=" 1.5
  bar "seed failures" "$(jq -r .failed "$OUT/seed.json")" "<=" 0
  bar "seed verification mismatches" "$(jq -r '.extra.verification.mismatches | length' "$OUT/seed.json")" "<=" 0
  bar "spread answers/s / ceiling" "$(jq -r .extra.ratioToCeiling "$OUT/spread.json")" ">=" 0.6
  bar "spread verification mismatches" "$(jq -r '.extra.verification.mismatches | length' "$OUT/spread.json")" "<=" 0
  bar "ramp break (offered/s) / ack server's" "$(jq -r .extra.breakRatioToCeiling "$OUT/ramp.json")" ">=" 0.5
  bar "idle connections held (of $(jq -r .extra.idle.requested "$OUT/idle.json"))" "$(jq -r .extra.idle.held "$OUT/idle.json")" ">=" 20000
  bar "idle RSS bytes per connection" "$(jq -r .extra.idle.rssBytesPerConnection "$OUT/idle.json")" "<=" 12288
else
  grep '^{' "$OUT/runs.txt"
fi
grep '^==\|load average' "$OUT/runs.txt" | sed 's/^/  /'
