#!/bin/sh
# Builds the benchmark baselines from the Go module proxy, once per machine (Go builds only the
# lab's tools; k8stun itself stays TypeScript):
#   portforward-client  client-go's port-forward (portforward_client/main.go), the `bench tier`
#                       baseline, at client-go $CLIENT_GO_VERSION
#   tun2socks           github.com/xjasonlyu/tun2socks/v2 at $TUN2SOCKS_VERSION, the `bench tun`
#                       comparison, built in a copy of its module (`go install` asks the proxy for
#                       the module's version list, which it does not serve for this module)
#   socks-rewriter      socks_rewriter/main.go, the SOCKS5 server both tun2socks and k8stun use
# Cached outside the repository, keyed by versions and the client's source:
#   ${K8STUN_LAB_CACHE:-$HOME/.cache/k8stun-lab}/bench-tools-<key>/bin/
# Prints the bin directory on stdout; progress on stderr. K8STUN_LAB_NO_BUILD=1: only look.
set -eu
CLIENT_GO_VERSION=${CLIENT_GO_VERSION:-v0.37.2}
TUN2SOCKS_VERSION=${TUN2SOCKS_VERSION:-v2.7.0}
here=$(cd "$(dirname "$0")" && pwd)
source_hash=$(cat "$here/portforward_client/main.go" "$here/socks_rewriter/main.go" | sha256sum | cut -c1-12)
cache=${K8STUN_LAB_CACHE:-$HOME/.cache/k8stun-lab}/bench-tools-client-go-$CLIENT_GO_VERSION-$source_hash-tun2socks-$TUN2SOCKS_VERSION
bin=$cache/bin
if [ -x "$bin/portforward-client" ] && [ -x "$bin/tun2socks" ] && [ -x "$bin/socks-rewriter" ]; then
  echo "$bin"
  exit 0
fi
[ -n "${K8STUN_LAB_NO_BUILD:-}" ] && { echo "not built: $bin" >&2; exit 1; }
command -v go >/dev/null 2>&1 || { echo "go is needed to build the benchmark baselines" >&2; exit 1; }
mkdir -p "$bin" "$cache/src"
export GOFLAGS=-mod=mod CGO_ENABLED=0
log() { echo "k8stun-lab: $*" >&2; }

if [ ! -x "$bin/portforward-client" ]; then
  d=$cache/src/portforward-client; mkdir -p "$d"; cd "$d"
  [ -f go.mod ] || go mod init k8stun.lab/portforward-client >/dev/null 2>&1
  cp "$here/portforward_client/main.go" main.go
  go get "k8s.io/client-go@$CLIENT_GO_VERSION" >&2
  go mod tidy >&2
  nice -n 19 go build -o "$bin/portforward-client" . >&2
  log "portforward-client built"
fi
if [ ! -x "$bin/socks-rewriter" ]; then
  d=$cache/src/socks-rewriter; mkdir -p "$d"; cd "$d"
  [ -f go.mod ] || go mod init k8stun.lab/socks-rewriter >/dev/null 2>&1
  cp "$here/socks_rewriter/main.go" main.go
  nice -n 19 go build -o "$bin/socks-rewriter" . >&2
  log "socks-rewriter built"
fi
if [ ! -x "$bin/tun2socks" ]; then
  module=$(go mod download -json "github.com/xjasonlyu/tun2socks/v2@$TUN2SOCKS_VERSION" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  d=$cache/src/tun2socks; rm -rf "$d"; cp -r "$module" "$d"; chmod -R u+w "$d"; cd "$d"
  nice -n 19 go build -trimpath -o "$bin/tun2socks" . >&2
  log "tun2socks built"
fi
echo "$bin"
