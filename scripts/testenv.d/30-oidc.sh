#!/usr/bin/env bash
# OpenID Connect provider for the social-login tests: the npm package
# oidc-provider (OpenID certified) run by oidc/server.mjs with one client and two
# users. Port 29400 (BOWCHAT_TEST_OIDC_PORT overrides).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NAME=oidc
SRC="$TESTENV_ROOT/scripts/testenv.d/oidc"
PORT="${BOWCHAT_TEST_OIDC_PORT:-29400}"
STATE="$TESTENV_STATE/$NAME"
PIDFILE="$STATE/pid"

answers() { curl -fsS "http://127.0.0.1:$PORT/.well-known/openid-configuration" >/dev/null; }

up() {
  mkdir -p "$STATE"
  # Credentials are made once per state folder, so a second `up` writes the same ones.
  [ -f "$STATE/secret" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/secret"
  local secret; secret="$(cat "$STATE/secret")"
  write_env "$NAME" \
    "BOWCHAT_TEST_OIDC_ISSUER=http://127.0.0.1:$PORT" \
    "BOWCHAT_TEST_OIDC_CLIENT_ID=bowchat-test" \
    "BOWCHAT_TEST_OIDC_CLIENT_SECRET=$secret" \
    "BOWCHAT_TEST_OIDC_REDIRECT_PATH=/api/auth/oauth/test/callback" \
    "BOWCHAT_TEST_OIDC_USER=alice" \
    "BOWCHAT_TEST_OIDC_PASSWORD=alice-password" \
    "BOWCHAT_TEST_OIDC_EMAIL=alice@idp.test" \
    "BOWCHAT_TEST_OIDC_USER2=bob" \
    "BOWCHAT_TEST_OIDC_PASSWORD2=bob-password" \
    "BOWCHAT_TEST_OIDC_EMAIL2=bob@idp.test"
  if pid_alive "$PIDFILE" && answers; then return 0; fi
  stop_pid "$PIDFILE"

  # node_modules live in the cache, keyed by the lock file, and are installed once.
  local key dir
  key="$(sha256sum "$SRC/package-lock.json" | cut -c1-16)"
  dir="$TESTENV_CACHE/$NAME/$key"
  if [ ! -d "$dir/node_modules/oidc-provider" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  # ES modules resolve imports next to the file, so the server runs from there.
  cp "$SRC/server.mjs" "$dir/server.mjs"
  OIDC_PORT="$PORT" OIDC_CLIENT_ID=bowchat-test OIDC_CLIENT_SECRET="$secret" \
  OIDC_USERS='[{"login":"alice","password":"alice-password","email":"alice@idp.test","name":"Alice Test"},{"login":"bob","password":"bob-password","email":"bob@idp.test","name":"Bob Test"}]' \
    setsid nohup node "$dir/server.mjs" >"$STATE/log" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  wait_for "oidc provider on $PORT" 30 answers || { tail -20 "$STATE/log" >&2; return 1; }
}

case "${1:-}" in
  up) up ;;
  down) stop_pid "$PIDFILE"; rm -rf "$STATE" ;;
  status) answers ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
