#!/bin/sh
# Builds the real control plane for the lab's cluster tier from the Go module proxy, once per
# machine: kube-apiserver and kube-controller-manager (module k8s.io/kubernetes, with a `replace`
# pinning each k8s.io/* staging module to the matching v0.x.y), etcd (a main calling etcdmain),
# and kwok. Binaries are cached outside the repository, keyed by version:
#   ${K8STUN_LAB_CACHE:-$HOME/.cache/k8stun-lab}/kube-<KUBE>-etcd-<ETCD>-kwok-<KWOK>/bin/
# Prints the bin directory on stdout; progress and build times on stderr.
set -eu
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
staging=$(echo "$KUBE_VERSION" | sed 's/^v1\./v0./')
cache=${K8STUN_LAB_CACHE:-$HOME/.cache/k8stun-lab}/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION
bin=$cache/bin
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/etcd" ] && [ -x "$bin/kwok" ]; then
  echo "$bin"
  exit 0
fi
[ -n "${K8STUN_LAB_NO_BUILD:-}" ] && { echo "not built: $bin" >&2; exit 1; }
command -v go >/dev/null 2>&1 || { echo "go is needed to build the lab's control plane" >&2; exit 1; }
mkdir -p "$bin" "$cache/src"
export GOFLAGS=-mod=mod CGO_ENABLED=0
log() { echo "k8stun-lab: $*" >&2; }
timed() { start=$(date +%s); "$@"; log "$1 done in $(( $(date +%s) - start )) s"; }

build_etcd() {
  [ -x "$bin/etcd" ] && return 0
  d=$cache/src/etcd; mkdir -p "$d"; cd "$d"
  [ -f go.mod ] || go mod init k8stun.lab/etcd >/dev/null 2>&1
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go mod tidy >&2
  go build -o "$bin/etcd" . >&2
}

kube_module() {
  d=$cache/src/kube; mkdir -p "$d/apiserver" "$d/controller-manager"; cd "$d"
  if [ ! -f go.mod ]; then
    go mod init k8stun.lab/kube >/dev/null 2>&1
    modfile=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    # Every staging module kubernetes replaces with ./staging/src/... gets the published version.
    sed -n 's#^[[:space:]]*\(k8s.io/[A-Za-z0-9._-]*\) => ./staging/src/.*#\1#p' "$modfile" | sort -u | while read -r m; do
      echo "replace $m => $m $staging" >> go.mod
    done
    echo "require k8s.io/kubernetes $KUBE_VERSION" >> go.mod
  fi
  cat > apiserver/main.go <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
GO
  cat > controller-manager/main.go <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() { os.Exit(cli.Run(app.NewControllerManagerCommand())) }
GO
  go mod tidy >&2
}

build_apiserver() {
  [ -x "$bin/kube-apiserver" ] && return 0
  cd "$cache/src/kube" && go build -o "$bin/kube-apiserver" ./apiserver >&2
}

build_controller_manager() {
  [ -x "$bin/kube-controller-manager" ] && return 0
  cd "$cache/src/kube" && go build -o "$bin/kube-controller-manager" ./controller-manager >&2
}

build_kwok() {
  [ -x "$bin/kwok" ] && return 0
  GOBIN=$bin go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2 && return 0
  log "go install of kwok failed; building it as a module"
  d=$cache/src/kwok; mkdir -p "$d"; cd "$d"
  [ -f go.mod ] || go mod init k8stun.lab/kwok >/dev/null 2>&1
  cat > main.go <<'GO'
package main

import _ "sigs.k8s.io/kwok/cmd/kwok"
GO
  go get "sigs.k8s.io/kwok@$KWOK_VERSION" >&2
  go mod tidy >&2
  go build -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok >&2
}

all_start=$(date +%s)
timed build_etcd
timed kube_module
timed build_apiserver
timed build_controller_manager
timed build_kwok
log "control plane built in $(( $(date +%s) - all_start )) s into $bin"
echo "$bin"
