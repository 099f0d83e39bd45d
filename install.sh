#!/bin/sh
# Installs the k8stun binary for this machine: downloads dist/k8stun-<os>-<arch> and SHA256SUMS from
# a release, verifies the checksum, and installs to /usr/local/bin (root) or ~/.local/bin.
#   curl -fsSL https://github.com/k8stun/k8stun/releases/latest/download/install.sh | sh
# Environment: K8STUN_RELEASE_URL (where the assets are), K8STUN_INSTALL_DIR (where to install).
set -eu
base=${K8STUN_RELEASE_URL:-https://github.com/k8stun/k8stun/releases/latest/download}
case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "k8stun install: unsupported OS $(uname -s)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) echo "k8stun install: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
asset="k8stun-$os-$arch"
if [ -n "${K8STUN_INSTALL_DIR:-}" ]; then dir=$K8STUN_INSTALL_DIR
elif [ "$(id -u)" = 0 ]; then dir=/usr/local/bin
else dir="$HOME/.local/bin"; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() { curl -fsSL "$1" -o "$2" || { echo "k8stun install: cannot download $1" >&2; exit 1; }; }
fetch "$base/$asset" "$tmp/$asset"
fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS"
expected=$(awk -v a="$asset" '$2 == a || $2 == "*"a {print $1}' "$tmp/SHA256SUMS")
[ -n "$expected" ] || { echo "k8stun install: SHA256SUMS has no entry for $asset" >&2; exit 1; }
if command -v sha256sum >/dev/null 2>&1; then actual=$(sha256sum "$tmp/$asset" | awk '{print $1}')
else actual=$(shasum -a 256 "$tmp/$asset" | awk '{print $1}'); fi
if [ "$expected" != "$actual" ]; then
  echo "k8stun install: checksum mismatch for $asset (expected $expected, got $actual); nothing installed" >&2
  exit 1
fi
mkdir -p "$dir"
chmod +x "$tmp/$asset"
mv "$tmp/$asset" "$dir/k8stun"
echo "k8stun installed to $dir/k8stun"
case ":$PATH:" in *":$dir:"*) ;; *) echo "note: $dir is not on your PATH" ;; esac
