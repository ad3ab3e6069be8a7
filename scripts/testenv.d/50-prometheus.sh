#!/usr/bin/env bash
# Prometheus for the dashboard tests: the Debian `prometheus` package's binary,
# run by this script with its own configuration and data folder (the package's
# system service is not used). Port 29090 (BOWCHAT_TEST_PROMETHEUS_PORT
# overrides). It scrapes itself; tests that need it to scrape a server they
# started run their own process from BOWCHAT_TEST_PROMETHEUS_BIN.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NAME=prometheus
PORT="${BOWCHAT_TEST_PROMETHEUS_PORT:-29090}"
STATE="$TESTENV_STATE/$NAME"
PIDFILE="$STATE/pid"
BIN=/usr/bin/prometheus

answers() { curl -fsS "http://127.0.0.1:$PORT/-/ready" >/dev/null; }

up() {
  mkdir -p "$STATE" "$TESTENV_CACHE/$NAME"
  apt_install prometheus
  write_env "$NAME" \
    "BOWCHAT_TEST_PROMETHEUS_URL=http://127.0.0.1:$PORT" \
    "BOWCHAT_TEST_PROMETHEUS_BIN=$BIN"
  if pid_alive "$PIDFILE" && answers; then return 0; fi
  stop_pid "$PIDFILE"
  cat > "$STATE/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PORT"]
YML
  setsid nohup "$BIN" \
    --config.file="$STATE/prometheus.yml" \
    --storage.tsdb.path="$STATE/data" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$PORT" \
    >"$STATE/log" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  wait_for "prometheus on $PORT" 30 answers || { tail -20 "$STATE/log" >&2; return 1; }
}

case "${1:-}" in
  up) up ;;
  down) stop_pid "$PIDFILE"; rm -rf "$STATE" ;;
  status) answers ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
