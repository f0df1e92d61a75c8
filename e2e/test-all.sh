#!/usr/bin/env bash
# Every test: unit, property, CRD drift, fake-kubelet and the end-to-end suite against a genuine
# control plane. Installs what it needs (Debian packages, the control-plane build) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash e2e/setup.sh
# Benches are measurements, not tests: `cargo bench --bench scale` (see README).
# --workspace: the sluice package and the test kit beside it (fake kubelet, harness).
cargo test --workspace --lib --bins --tests "$@"
