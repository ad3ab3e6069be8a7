#!/usr/bin/env bash
# Apache Kafka for the tests: the broker's jars resolved by Maven from kafka/pom.xml
# (cached under $TESTENV_CACHE/kafka), one JVM that is broker and KRaft controller
# at once, storage formatted under $TESTENV_STATE/kafka, 127.0.0.1 only, topics are
# never created on the fly (auto.create.topics.enable=false).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"

NAME=kafka
PORT="${TESTENV_KAFKA_PORT:-29092}"
CONTROLLER_PORT="${TESTENV_KAFKA_CONTROLLER_PORT:-29093}"
DIR="$TESTENV_STATE/$NAME"
PID="$DIR/kafka.pid"
LOG="$DIR/server.log"
CACHE="$TESTENV_CACHE/$NAME"
POM="$HERE/kafka/pom.xml"

# The jar folder is keyed by the pom's content, so a version bump resolves anew.
lib_dir() { echo "$CACHE/lib-$(sha256sum "$POM" | cut -c1-16)"; }

fetch_jars() {
  local lib; lib="$(lib_dir)"
  [ -f "$lib/.complete" ] && return 0
  command -v mvn >/dev/null || apt_install maven
  rm -rf "$lib.tmp"
  mkdir -p "$CACHE"
  mvn -q -B -Dstyle.color=never -f "$POM" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib.tmp" \
    >"$CACHE/mvn.log" 2>&1 || { tail -n 40 "$CACHE/mvn.log" >&2; return 1; }
  touch "$lib.tmp/.complete"
  rm -rf "$lib"; mv "$lib.tmp" "$lib"
}

# A real protocol answer: an ApiVersions request (key 18, v0, correlation id 7)
# must come back with correlation id 7 and error code 0. Bytes after the 4-byte
# length: correlation id (4), error code (2).
answers() {
  pid_alive "$PID" && port_open "$PORT" || return 1
  local reply
  reply="$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf "\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\xff\xff" >&3
    head -c 10 <&3 | od -An -tx1 | tr -d " \n"' _ "$PORT" 2>/dev/null)" || return 1
  [ "${reply:8:12}" = "000000070000" ]
}

write_config() {
  cat >"$DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/data
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $LOG
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
}

up() {
  if answers; then write_env "$NAME" "BOWCHAT_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$PORT"; return 0; fi
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  fetch_jars
  local cp; cp="$(lib_dir)/*"
  stop_pid "$PID"
  mkdir -p "$DIR"
  write_config
  local log4j="-Dlog4j2.configurationFile=$DIR/log4j2.properties"
  if [ ! -f "$DIR/data/meta.properties" ]; then
    rm -rf "$DIR/data"
    # A cluster id is 16 random bytes in URL-safe base64 without padding (what
    # `StorageTool random-uuid` prints), made here to spare a JVM start.
    # Like Kafka's own, it never starts with '-', which would read as an option.
    local cluster_id="-"
    while [ "${cluster_id:0:1}" = "-" ]; do
      cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    java "$log4j" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$DIR/server.properties" >"$DIR/format.log" 2>&1 || { cat "$DIR/format.log" >&2; return 1; }
  fi
  # setsid + nohup: the broker leaves this script's session and outlives it.
  setsid nohup java -Xms128m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true "$log4j" -cp "$cp" kafka.Kafka "$DIR/server.properties" \
    </dev/null >>"$DIR/stdout.log" 2>&1 &
  echo $! >"$PID"
  wait_for "kafka on 127.0.0.1:$PORT" 120 answers || { tail -n 30 "$LOG" "$DIR/stdout.log" >&2; return 1; }
  write_env "$NAME" "BOWCHAT_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$PORT"
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
