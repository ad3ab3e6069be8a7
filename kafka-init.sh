#!/usr/bin/env bash
# Creates BowChat's Kafka topics (the four bus topics and their .DLT topics) and,
# with --partitions N, grows the bus topics to N partitions. Everything goes
# through the binary's admin command, so brokers, topic prefix and defaults come
# from the same configuration as `bowchat serve` (--config FILE / BOWCHAT_CONFIG
# and BOWCHAT_BUS__KAFKA__* variables). Growing prints which live auctions keep
# their partitions (all that are pinned) and refuses, unless --force, while a
# live auction without a pinned partition count would move.
#
#   ./kafka-init.sh [--partitions N] [--force]
#
# BOWCHAT_BIN overrides the binary (default: target/release/bowchat, else
# target/debug/bowchat, else `bowchat` on PATH). Safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "$0")")" && pwd)"

partitions=""
force=()
while [ $# -gt 0 ]; do
  case "$1" in
    --partitions) partitions="${2:?--partitions needs a number}"; shift 2 ;;
    --partitions=*) partitions="${1#*=}"; shift ;;
    --force) force=(--force); shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

bin="${BOWCHAT_BIN:-}"
if [ -z "$bin" ]; then
  for candidate in "$ROOT/target/release/bowchat" "$ROOT/target/debug/bowchat"; do
    if [ -x "$candidate" ]; then bin="$candidate"; break; fi
  done
fi
bin="${bin:-bowchat}"

if [ -n "$partitions" ]; then
  "$bin" admin topics ensure --partitions "$partitions"
  "$bin" admin topics grow --partitions "$partitions" "${force[@]}"
else
  "$bin" admin topics ensure
fi
