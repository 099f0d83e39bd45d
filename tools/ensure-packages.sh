#!/bin/sh
# Installs the Debian packages the lab tests drive (real clients and namespace tools) when they are
# missing. Runs before `deno task test`; a no-op when everything is present.
set -eu
need=""
for pair in curl:curl dig:dnsutils ip:iproute2 nc:netcat-openbsd unshare:util-linux nsenter:util-linux getent:libc-bin ping:iputils-ping openssl:openssl iperf3:iperf3 chromium:chromium; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need="$need $pkg"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "k8stun tests need these Debian packages:$need (run as root, or: sudo apt-get install$need)" >&2
  exit 1
fi
echo "installing:$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends $need >&2
