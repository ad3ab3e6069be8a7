#!/usr/bin/env bash
# MongoDB wire protocol for the tests: FerretDB v1 (the small Go module in
# ferretdb/, built with modules from the Go module proxy into
# $TESTENV_CACHE/ferretdb) on its SQLite backend, data under
# $TESTENV_STATE/ferretdb, listening on 127.0.0.1 only. No MongoDB server is in
# any registry we can reach; docs/testenv.md lists what FerretDB v1 lacks.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"

NAME=ferretdb
PORT="${TESTENV_MONGODB_PORT:-27018}"
DIR="$TESTENV_STATE/$NAME"
PID="$DIR/ferretdb.pid"
CACHE="$TESTENV_CACHE/$NAME"
SRC="$HERE/ferretdb"
URL="mongodb://127.0.0.1:$PORT/"

# The binary is keyed by the module's content (go.mod pins FerretDB v1.24.2,
# go.sum the whole tree), so a change to it builds anew. `go install` of
# FerretDB's own command is no option: see ferretdb/main.go.
bin_path() {
  echo "$CACHE/bin-$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-16)/ferretdb"
}

build() {
  local bin; bin="$(bin_path)"
  [ -x "$bin" ] && return 0
  command -v go >/dev/null || { echo "testenv: ferretdb needs Go to build" >&2; return 1; }
  mkdir -p "$(dirname "$bin")"
  (cd "$SRC" && GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gobuild" GOFLAGS="-modcacherw -mod=readonly" \
    go build -trimpath -o "$bin.tmp" .) >"$CACHE/build.log" 2>&1 \
    || { tail -n 40 "$CACHE/build.log" >&2; return 1; }
  mv "$bin.tmp" "$bin"
}

# A real protocol answer: OP_MSG {hello: 1, $db: "admin"} with request id 7 must
# come back as an OP_MSG (2013) in reply to 7 whose document holds ok: 1.0.
answers() {
  pid_alive "$PID" && port_open "$PORT" || return 1
  local reply
  reply="$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf "\x34\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00" >&3
    printf "\x1f\x00\x00\x00\x10hello\x00\x01\x00\x00\x00\x02\x24db\x00\x06\x00\x00\x00admin\x00\x00" >&3
    head="$(head -c 16 <&3 | od -An -tx1 | tr -d " \n")"
    len=$(( 16#${head:6:2}${head:4:2}${head:2:2}${head:0:2} ))
    echo -n "$head:"
    head -c $(( len - 16 )) <&3 | od -An -tx1 | tr -d " \n"' _ "$PORT" 2>/dev/null)" || return 1
  [ "${reply:16:16}" = "07000000dd070000" ] && [[ "$reply" == *016f6b00000000000000f03f* ]]
}

up() {
  if answers; then write_env "$NAME" "BOWCHAT_TEST_MONGODB_URL=$URL"; return 0; fi
  build
  stop_pid "$PID"
  mkdir -p "$DIR/data"
  # The embeddable package opens no debug HTTP listener and sends no telemetry:
  # nothing but the wire listener opens a port, and nothing leaves the machine.
  setsid nohup "$(bin_path)" -listen-addr="127.0.0.1:$PORT" -sqlite-dir="$DIR/data" -log-level=warn \
    </dev/null >>"$DIR/server.log" 2>&1 &
  echo $! >"$PID"
  wait_for "ferretdb on 127.0.0.1:$PORT" 60 answers || { tail -n 20 "$DIR/server.log" >&2; return 1; }
  write_env "$NAME" "BOWCHAT_TEST_MONGODB_URL=$URL"
}

down() {
  stop_pid "$PID"
  rm -rf "$DIR"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) answers ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
