#!/usr/bin/env bash
# Install what the tests and the demo need: the local control plane (built once from Debian's
# kubernetes source package, cached under ~/.cache/k8s-1.20.2) and Debian packages.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v ss >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
  echo "[setup] apt-get install ${need[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash e2e/k8s-local.sh build
