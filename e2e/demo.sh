#!/usr/bin/env bash
# demo.sh: the README's demo on a fresh machine. Brings up the local control plane, installs the
# CRDs, starts the fake kubelet and sluice-controller, applies e2e/manifests/seed-rollout.yaml
# unchanged, waits until it is Healthy, then sets the image to frontend:v2 and shows
# `kubectl sluice get rollout frontend --watch` while a helper promotes each 10-minute pause
# after ~5 s, so the canary walks 1/4 → 2/3 → 3/2 → 4/1 → 5 in about a minute. Everything it
# started is stopped on exit (also on Ctrl-C or failure).
#
# Usage: bash e2e/demo.sh
# Knobs: SLUICE_DEMO_DIR (control-plane state, default target/demo-cluster),
#        SLUICE_DEMO_LOGS (default target/demo-logs), SLUICE_DEMO_PAUSE (seconds before each
#        promote, default 5), CARGO_TARGET_DIR (where the binaries are built).
# Without a terminal (CI, a pipe) the watch prints one snapshot per change instead of redrawing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DIR="${SLUICE_DEMO_DIR:-$ROOT/target/demo-cluster}"
LOGS="${SLUICE_DEMO_LOGS:-$ROOT/target/demo-logs}"
PAUSE="${SLUICE_DEMO_PAUSE:-5}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/debug"
NS=default

if [[ -t 2 ]]; then
  say() { printf '\n\033[1m[demo]\033[0m %s\n' "$*" >&2; }
else
  say() { printf '\n[demo] %s\n' "$*" >&2; }
fi

say "installing prerequisites (e2e/setup.sh) and building the binaries"
bash e2e/setup.sh
# --workspace: the fake kubelet is a binary of the test kit (testkit/), not of sluice.
cargo build --workspace --bins
mkdir -p "$LOGS"

PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  bash e2e/k8s-local.sh down "$DIR" >/dev/null 2>&1 || true
  say "stopped everything this demo started (logs in $LOGS)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting the control plane in $DIR"
# A fresh cluster every time: etcd keeps its data in $DIR, and a Rollout left from an earlier
# run would turn this demo's first apply into an update.
bash e2e/k8s-local.sh down "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR"
bash e2e/k8s-local.sh up "$DIR" >/dev/null
export KUBECONFIG="$DIR/kubeconfig"
export PATH="$BIN:$PATH"

# `kubectl sluice` when kubectl is installed (it finds kubectl-sluice on PATH), else the plugin
# binary directly: same program, same output.
if command -v kubectl >/dev/null; then
  SLUICE=(kubectl sluice)
else
  SLUICE=(kubectl-sluice)
fi
SHOW="${SLUICE[*]}"
sluice() { "${SLUICE[@]}" "$@"; }

# Server-side apply of a YAML file with curl, so the setup needs nothing but the control plane.
# shellcheck disable=SC1091
source "$DIR/ports.env"
API="https://127.0.0.1:$APISERVER_PORT"
apply() { # apply API_PATH FILE
  curl -sSf --cacert "$DIR/pki/ca.crt" -H "Authorization: Bearer $(cat "$DIR/token")" \
    -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary "@$2" \
    "$API$1?fieldManager=sluice-demo&force=true" >/dev/null
}
name_of() { awk '/^metadata:/ {m = 1; next} m && /^  name:/ {print $2; exit}' "$1"; }

say "installing the CRDs"
for f in crds/*.yaml; do
  apply "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$(name_of "$f")" "$f"
done
for _ in $(seq 100); do
  sluice list rollouts >/dev/null 2>&1 && break
  sleep 0.2
done

say "starting the fake kubelet and sluice-controller (logs in $LOGS)"
FAKE_KUBELET_READY_DELAY=300 "$BIN/fake-kubelet" >"$LOGS/fake-kubelet.log" 2>&1 &
PIDS+=($!)
"$BIN/sluice-controller" --kubeconfig "$KUBECONFIG" \
  --metrics-port "${SLUICE_DEMO_METRICS_PORT:-18090}" \
  --healthz-port "${SLUICE_DEMO_HEALTHZ_PORT:-18091}" >"$LOGS/controller.log" 2>&1 &
PIDS+=($!)

say "applying e2e/manifests/seed-rollout.yaml and waiting until it is Healthy"
apply "/apis/argoproj.io/v1alpha1/namespaces/$NS/rollouts/frontend" e2e/manifests/seed-rollout.yaml
sluice status frontend --timeout 120s

say "$SHOW set image frontend frontend=frontend:v2"
sluice set image frontend frontend=frontend:v2

# The promoter: each time the rollout reaches a new pause step, wait $PAUSE s and promote.
# It then waits for Healthy and ends the watch below.
promoter() {
  local last="" status="" step=""
  for _ in 1 2 3 4; do
    while true; do
      read -r status step < <(sluice list rollouts --name frontend | awk 'NR == 2 {print $3, $4}') || true
      [[ "$status" == Paused && "$step" != "$last" ]] && break
      sleep 0.3
    done
    last="$step"
    sleep "$PAUSE"
    sluice promote frontend
  done
  sluice status frontend --timeout 120s
  sleep 2
}

say "$SHOW get rollout frontend --watch  (the helper promotes each pause after ${PAUSE}s)"
sleep 1
# Started directly (not through a function) so that $! is the watch itself.
"${SLUICE[@]}" get rollout frontend --watch &
WATCH=$!
PIDS+=("$WATCH")
promoter >"$LOGS/promoter.log" 2>&1
kill "$WATCH" 2>/dev/null || true
wait "$WATCH" 2>/dev/null || true

say "done: revision 2 is stable"
sluice get rollout frontend
sluice list rollouts
