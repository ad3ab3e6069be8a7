#!/usr/bin/env bash
# etcd, the store of the test Kubernetes API server (21-kube.sh).
#
# The binary comes from Debian's etcd-server package, unpacked into the cache with
# `apt-get download` + `dpkg -x`: installing the package would also enable a
# system-wide service on the default ports, which the test environment must not own.
# Single member, plain HTTP on loopback, data under $TESTENV_STATE/etcd.
#   TESTENV_ETCD_PORT       client port (default 22379)
#   TESTENV_ETCD_PEER_PORT  peer port (default 22380)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
name=etcd
state="$TESTENV_STATE/$name"
cache="$TESTENV_CACHE/$name"
port="${TESTENV_ETCD_PORT:-22379}"
peer_port="${TESTENV_ETCD_PEER_PORT:-22380}"
url="http://127.0.0.1:$port"
bin="$cache/etcd"
pidfile="$state/etcd.pid"

healthy() { curl -fsS --max-time 2 "$url/health" 2>/dev/null | grep -q '"health":"true"'; }

# The package's etcd binary, unpacked once into the cache.
fetch() {
  [ -x "$bin" ] && return 0
  apt_install curl
  local stamp="$TESTENV_STATE/.apt-updated" tmp
  if [ ! -f "$stamp" ]; then apt-get update -qq; touch "$stamp"; fi
  # apt drops privileges to _apt for downloads, which cannot enter a home folder.
  tmp="$(mktemp -d)"
  chmod 0777 "$tmp"
  (cd "$tmp" && apt-get download -qq etcd-server >/dev/null)
  dpkg -x "$tmp"/etcd-server_*.deb "$tmp/root"
  install -m 0755 "$tmp/root/usr/bin/etcd" "$bin.new"
  basename "$tmp"/etcd-server_*.deb > "$cache/PACKAGE"
  mv "$bin.new" "$bin"
  rm -rf "$tmp"
}

start() {
  if pid_alive "$pidfile"; then return 0; fi
  if port_open "$port"; then
    echo "testenv: port $port is taken by something that is not this etcd" >&2
    return 1
  fi
  mkdir -p "$state/data"
  setsid nohup "$bin" \
    --name testenv \
    --data-dir "$state/data" \
    --listen-client-urls "$url" \
    --advertise-client-urls "$url" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "testenv=http://127.0.0.1:$peer_port" \
    --initial-cluster-state new \
    --logger zap --log-outputs stderr \
    >"$state/etcd.log" 2>&1 </dev/null &
  echo $! > "$pidfile"
}

case "${1:-}" in
  up)
    mkdir -p "$state" "$cache"
    if ! healthy; then
      fetch
      start
      wait_for "etcd on $url" 60 healthy || { tail -n 20 "$state/etcd.log" >&2; exit 1; }
    fi
    write_env "$name" \
      "BOWCHAT_TEST_ETCD_ENDPOINTS=$url" \
      "BOWCHAT_TEST_ETCD_VERSION=$("$bin" --version | sed -n 's/^etcd Version: //p')"
    ;;
  down)
    stop_pid "$pidfile"
    rm -rf "$state"
    ;;
  status)
    healthy
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
