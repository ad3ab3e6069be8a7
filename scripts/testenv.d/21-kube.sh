#!/usr/bin/env bash
# A Kubernetes API server for the operator's and the chart's tests, with kubectl and helm.
#
# kube-apiserver and kubectl are built with Go from the k8s.io/kubernetes module
# (build module in kube/), helm from helm.sh/helm/v3 (build module in helm/); the
# binaries are kept under $TESTENV_CACHE/kube/ per version and rebuilt only when a
# build module's go.mod/go.sum change. The server stores its data in etcd
# (20-etcd.sh, started here when it does not answer), serves TLS on loopback with a
# CA, serving cert, admin client cert and service-account key generated per run
# under $TESTENV_STATE/kube, and authorizes with RBAC. There is no controller
# manager, scheduler or kubelet: objects are stored and validated, Pods never run.
#   TESTENV_KUBE_PORT  secure port (default 26443)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
name=kube
state="$TESTENV_STATE/$name"
cache="$TESTENV_CACHE/$name"
kube_version=v1.36.3
helm_version=v3.22.0
port="${TESTENV_KUBE_PORT:-26443}"
api="https://127.0.0.1:$port"
etcd_url="http://127.0.0.1:${TESTENV_ETCD_PORT:-22379}"
bindir="$cache/$kube_version"
helmdir="$cache/helm-$helm_version"
pki="$state/pki"
pidfile="$state/kube-apiserver.pid"
kubeconfig="$state/kubeconfig"

ready() {
  [ -f "$pki/admin.crt" ] &&
    [ "$(curl -sS --max-time 3 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
      "$api/readyz" 2>/dev/null)" = ok ]
}

# The hash of a build module's pins: a change of go.mod/go.sum means a rebuild.
pins() { cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -d' ' -f1; }

# built MODULE_DIR OUT_DIR: OUT_DIR holds a build of the module's current pins.
built() { [ -f "$2/.pins" ] && [ "$(cat "$2/.pins")" = "$(pins "$1")" ]; }

# go_build MODULE_DIR OUT_DIR LDFLAGS PACKAGE...: build into OUT_DIR unless it holds
# a build of the same pins; binaries appear only when all of them are built.
go_build() {
  built "$here/kube" "$bindir" && built "$here/helm" "$helmdir" && return 0
  local mod="$1" out="$2" ldflags="$3"; shift 3
  built "$mod" "$out" && return 0
  local want; want="$(pins "$mod")"
  echo "testenv: building $* with $(go version | cut -d' ' -f3) (cold: many minutes)" >&2
  local tmp="$out.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # -p 2: the machine is shared. -mod=readonly: go.sum is the lock file, a missing
  # pin is an error rather than a silent download. No VCS stamp: the binaries
  # depend on the pins, not on the commit of this repository.
  (cd "$mod" && GOFLAGS="-mod=readonly -buildvcs=false" \
    go build -p 2 -trimpath -ldflags "$ldflags" -o "$tmp/" "$@")
  echo "$want" > "$tmp/.pins"
  rm -rf "$out" && mv "$tmp" "$out"
}

build() {
  built "$here/kube" "$bindir" && built "$here/helm" "$helmdir" && return 0
  # One build at a time, also when two `up`s race.
  exec 9>"$cache/.build.lock"
  flock 9
  local minor="${kube_version#v1.}"; minor="${minor%%.*}"
  local ld="-s -w" pkg date
  # The release's own date (the module proxy's timestamp), so builds are reproducible.
  date="$(cd "$here/kube" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
  # Without these the binaries say v0.0.0, which kubectl and client libraries reject.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  go_build "$here/kube" "$bindir" "$ld" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
  # helm's lint and capabilities report the Kubernetes version of its client-go.
  local kminor
  kminor="$(sed -n 's/^\tk8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$here/helm/go.mod")"
  ld="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kminor"
  done
  go_build "$here/helm" "$helmdir" "$ld" helm.sh/helm/v3/cmd/helm
  exec 9>&-
}

# CA, serving cert, admin client cert (O=system:masters), service-account key pair.
make_pki() {
  [ -f "$pki/admin.crt" ] && return 0
  mkdir -p "$pki" && chmod 0700 "$pki"
  local o="openssl"
  $o req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=bowchat-testenv-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  $o req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  # 10.0.0.1 is the "kubernetes" Service's address in --service-cluster-ip-range.
  printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
    "extendedKeyUsage=serverAuth" > "$pki/apiserver.ext"
  $o x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
  $o req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=bowchat-admin" \
    -keyout "$pki/admin.key" -out "$pki/admin.csr" 2>/dev/null
  echo "extendedKeyUsage=clientAuth" > "$pki/admin.ext"
  $o x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/admin.ext" -out "$pki/admin.crt" 2>/dev/null
  $o genrsa -out "$pki/sa.key" 2048 2>/dev/null
  $o rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  # A static bearer token for clients that would rather not load a client cert.
  echo "$($o rand -hex 24),bowchat-admin-token,bowchat-admin-token,system:masters" > "$pki/tokens.csv"
}

write_kubeconfig() {
  local b64="base64 -w0"
  cat > "$kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bowchat-testenv
  cluster:
    server: $api
    certificate-authority-data: $($b64 < "$pki/ca.crt")
users:
- name: bowchat-admin
  user:
    client-certificate-data: $($b64 < "$pki/admin.crt")
    client-key-data: $($b64 < "$pki/admin.key")
contexts:
- name: bowchat-testenv
  context:
    cluster: bowchat-testenv
    user: bowchat-admin
current-context: bowchat-testenv
EOF
  chmod 0600 "$kubeconfig.tmp"
  mv "$kubeconfig.tmp" "$kubeconfig"
}

start() {
  if pid_alive "$pidfile"; then return 0; fi
  if port_open "$port"; then
    echo "testenv: port $port is taken by something that is not this kube-apiserver" >&2
    return 1
  fi
  setsid nohup "$bindir/kube-apiserver" \
    --etcd-servers="$etcd_url" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" \
    --cert-dir="$pki" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --token-auth-file="$pki/tokens.csv" \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=RBAC \
    --profiling=false \
    >"$state/kube-apiserver.log" 2>&1 </dev/null &
  echo $! > "$pidfile"
}

# Deletes the server's keys from etcd so that the next `up` starts empty (etcd's
# JSON gateway: keys are base64, the range is [/registry/, /registry0)).
wipe_etcd() {
  curl -fsS --max-time 2 "$etcd_url/health" >/dev/null 2>&1 || return 0
  curl -fsS --max-time 10 -XPOST "$etcd_url/v3/kv/deleterange" \
    -d "{\"key\":\"$(printf /registry/ | base64)\",\"range_end\":\"$(printf /registry0 | base64)\"}" \
    >/dev/null || echo "testenv: could not delete the apiserver's keys from etcd" >&2
}

case "${1:-}" in
  up)
    mkdir -p "$state" "$cache"
    apt_install curl openssl
    build
    if ! ready; then
      curl -fsS --max-time 2 "$etcd_url/health" >/dev/null 2>&1 || bash "$here/20-etcd.sh" up
      make_pki
      start
      wait_for "kube-apiserver on $api" 180 ready || { tail -n 30 "$state/kube-apiserver.log" >&2; exit 1; }
    fi
    write_kubeconfig
    write_env "$name" \
      "BOWCHAT_TEST_KUBE_API=$api" \
      "BOWCHAT_TEST_KUBECONFIG=$kubeconfig" \
      "BOWCHAT_TEST_KUBE_TOKEN=$(cut -d, -f1 "$pki/tokens.csv")" \
      "BOWCHAT_TEST_KUBE_CA=$pki/ca.crt" \
      "BOWCHAT_TEST_KUBE_VERSION=$kube_version" \
      "BOWCHAT_TEST_KUBECTL=$bindir/kubectl" \
      "BOWCHAT_TEST_HELM=$helmdir/helm"
    ;;
  down)
    stop_pid "$pidfile"
    wipe_etcd
    rm -rf "$state"
    ;;
  status)
    ready
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
