#!/usr/bin/env bash
# The seed and spread scenarios against cluster mode: one worker (auction +
# chat roles) and one gateway as separate processes on the test environment's
# PostgreSQL and Kafka (`scripts/testenv up postgres kafka`), a fresh database
# and topic prefix per run. Results go to target/bench-cluster/; each
# scenario's answers/s is printed as a ratio to the embedded figure of the
# last `bash loadtest/bench.sh` (target/bench/), run them in one session.
#
#   bash loadtest/bench-cluster.sh                 # seed stages at full scale
#   BENCH_SCALE=0.2 bash loadtest/bench-cluster.sh # smaller
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/bench-cluster"
SCALE="${BENCH_SCALE:-1}"
GATEWAY_PORT="${BENCH_PORT:-18095}"
WORKER_PORT="${BENCH_WORKER_PORT:-18096}"
PARTITIONS="${BENCH_PARTITIONS:-8}"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.svg "$OUT"/runs.txt

ENV_FILE="$(bash scripts/testenv up postgres kafka)"
PG_URL="$(grep '^BOWCHAT_TEST_PG_URL=' "$ENV_FILE" | cut -d= -f2-)"
BOOTSTRAP="$(grep '^BOWCHAT_TEST_KAFKA_BOOTSTRAP=' "$ENV_FILE" | cut -d= -f2-)"
RUN="bench$(date +%s)"
DB_URL="${PG_URL%/*}/$RUN"
psql -q "$PG_URL" -c "create database $RUN" >/dev/null

echo "== building (release)" >&2
cargo build --release -q -p bowchat -p bowchat-loadtest
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

export BOWCHAT_STORE__KIND=postgres BOWCHAT_STORE__POSTGRES__URL="$DB_URL"
export BOWCHAT_BUS__KIND=kafka BOWCHAT_BUS__KAFKA__BOOTSTRAP="$BOOTSTRAP"
export BOWCHAT_BUS__KAFKA__TOPIC_PREFIX="$RUN."
export BOWCHAT_AUTH__ARGON2_MEMORY_KIB=1024 BOWCHAT_AUTH__ARGON2_ITERATIONS=1
# Every virtual user comes from this one IP: per-IP auth throttles off.
export BOWCHAT_AUTH__THROTTLE__IP__FREE_ATTEMPTS=0 BOWCHAT_AUTH__THROTTLE__REGISTER__FREE_ATTEMPTS=0
export BOWCHAT_GATEWAY__USER_RATE_PER_SEC=100000 BOWCHAT_GATEWAY__USER_RATE_BURST=100000
export BOWCHAT_GATEWAY__MAX_CONNECTIONS_PER_IP=20000 BOWCHAT_LOG__LEVEL=warn
# One key-encryption key for both processes (they share the signing keys).
export BOWCHAT_AUTH__KEY_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$PG_URL" -c "drop database if exists $RUN with (force)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

target/release/bowchat admin topics ensure --partitions "$PARTITIONS" >"$OUT/admin.log" 2>&1
target/release/bowchat serve --roles auction,chat --listen "127.0.0.1:$WORKER_PORT" >"$OUT/worker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 150); do curl -fsS "http://127.0.0.1:$WORKER_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
target/release/bowchat serve --roles gateway --listen "127.0.0.1:$GATEWAY_PORT" >"$OUT/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 150); do curl -fsS "http://127.0.0.1:$GATEWAY_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$GATEWAY_PORT/readyz" >/dev/null

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpus: $(nproc)  memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "cluster: 1 gateway + 1 worker (auction, chat), PostgreSQL + Kafka ($PARTITIONS partitions) on the same machine"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"
LT=(target/release/bowchat-loadtest --url "http://127.0.0.1:$GATEWAY_PORT" --out "$OUT")
"${LT[@]}" seed --scale "$SCALE" | tee "$OUT/runs.txt"
"${LT[@]}" spread --scale "$SCALE" --auctions 64 | tee -a "$OUT/runs.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
if command -v jq >/dev/null; then
  for f in seed spread; do
    jq -r '"\(.scenario) (cluster): answers/s \(.answersPerSec) (peak \(.peakAnswersPerSec)), failed \(.failed)/\(.answered + .failed), p50 \(.latencyMs.p50) ms, p95 \(.latencyMs.p95) ms, p99 \(.latencyMs.p99) ms; verification mismatches: \(.extra.verification.mismatches | length) of \(.extra.verification.acknowledgedBids) acknowledged bids"' "$OUT/$f.json"
    embedded="$ROOT/target/bench/$f.json"
    if [ -f "$embedded" ]; then
      awk -v c="$(jq -r .answersPerSec "$OUT/$f.json")" -v e="$(jq -r .answersPerSec "$embedded")" -v n="$f" \
        'BEGIN { r = c / e; printf "%s cluster / embedded answers/s: %.3f (%d / %d) %s\n", n, r, c, e, (r >= 0.5 ? "met" : "missed") }'
    else
      echo "$f: no embedded figure in target/bench (run bash loadtest/bench.sh first)"
    fi
  done
fi
