#!/usr/bin/env bash
# Headless Chromium for the web UI's end-to-end tests (e2e/, `node --test e2e/`).
#
# Not a server: the tests launch the browser themselves through playwright-core
# with the path written here, so `up` installs Chromium and chromedriver from
# Debian and runs `npm ci` in e2e/ (playwright-core pinned by package-lock.json;
# it never downloads a browser of its own). `status` is "the binary runs".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
name=chromium
state="$TESTENV_STATE/$name"
cache="$TESTENV_CACHE/$name"
root="${TESTENV_ROOT:-$(cd "$here/../.." && pwd)}"
chromium_bin=/usr/bin/chromium
driver_bin=/usr/bin/chromedriver

runs() { "$chromium_bin" --headless --no-sandbox --disable-gpu --version; }

# node_modules matches the lock file when npm's own record of the install does.
modules_current() {
  [ -f "$root/e2e/node_modules/.package-lock.json" ] &&
    [ -f "$root/e2e/node_modules/playwright-core/package.json" ] &&
    [ "$root/e2e/node_modules/.package-lock.json" -nt "$root/e2e/package-lock.json" ]
}

case "${1:-}" in
  up)
    mkdir -p "$state" "$cache"
    # Korean UI strings need a CJK font, or screenshots show empty boxes.
    apt_install chromium chromium-driver fonts-noto-cjk
    if ! modules_current; then
      # The npm cache lives with the other downloads; no browser download, no install scripts.
      (cd "$root/e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
        npm ci --cache "$cache/npm" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    fi
    wait_for "chromium" 30 runs
    write_env "$name" \
      "BOWCHAT_TEST_CHROMIUM=$chromium_bin" \
      "BOWCHAT_TEST_CHROMEDRIVER=$driver_bin"
    ;;
  down)
    # Nothing runs between tests; drop the per-run browser profiles.
    rm -rf "$state"
    ;;
  status)
    runs >/dev/null 2>&1 && [ -x "$driver_bin" ]
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
