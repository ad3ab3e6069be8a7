# Helpers shared by the component scripts (sourced, not run).

# wait_for DESCRIPTION SECONDS COMMAND...: retry COMMAND until it succeeds.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "testenv: $what did not come up within ${secs}s" >&2
      return 1
    fi
    sleep 0.5
  done
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_started PID: the process's start time in seconds since the epoch (from /proc).
pid_started() {
  local stat rest ticks btime hz
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The command name (field 2) may hold spaces; field 22 is the 20th after the ')'.
  rest="${stat##*) }"
  ticks="$(echo "$rest" | awk '{print $20}')"
  btime="$(awk '/^btime/ {print $2}' /proc/stat)"
  hz="$(getconf CLK_TCK)"
  echo $(( btime + ticks / hz ))
}

# pid_alive PIDFILE: the process the file names still runs. PIDs are reused (pid_max
# is 32768 here), and the state folder outlives the processes when a session ends
# without `down`, so a live PID alone proves nothing: the process must have started
# before the file was written. A reused PID belongs to a later process, which is
# neither trusted as the server nor signalled by stop_pid.
pid_alive() {
  local f="$1" pid started written
  [ -f "$f" ] || return 1
  pid="$(head -n 1 "$f" | tr -dc '0-9')"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  started="$(pid_started "$pid")" || return 1
  written="$(stat -c %Y "$f")"
  [ "$started" -le $(( written + 5 )) ]
}

# stop_pid PIDFILE: TERM, then KILL after 10 s.
stop_pid() {
  local f="$1" pid
  [ -f "$f" ] || return 0
  pid="$(head -n 1 "$f" | tr -dc '0-9')"
  if pid_alive "$f"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# apt_install PACKAGE...: install Debian packages that are missing (update once per run).
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  local stamp="$TESTENV_STATE/.apt-updated"
  if [ ! -f "$stamp" ]; then $sudo apt-get update -qq; touch "$stamp"; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# write_env NAME KEY=VALUE...: the component's env file.
write_env() {
  local name="$1"; shift
  printf '%s\n' "$@" > "$TESTENV_ENVD/$name.env"
}
