# Shared by the agent benchmarks (scripts/bench-agent.sh, bench-sealed.sh, bench-receiver.sh);
# sourced, not run. Gives:
#   - the release binaries $GITSEAL and $AGENT (built unless AGENT= names one),
#   - a scratch folder $work, removed on exit with every process started through `bg_start`,
#   - the local control plane (tests/controlplane) started in the background, KUBECONFIG
#     exported,
#   - `peak_rss PID` (VmHWM in MiB, one decimal), `cpu_seconds PID` (user + system CPU time
#     so far) and `now` (seconds, nanosecond fraction).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
top=$PWD
scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/cargo-target}"
[ -n "${AGENT:-}" ] || cargo build --quiet --release --locked -p gitseal-cli -p gitseal-agent
GITSEAL="${GITSEAL:-$CARGO_TARGET_DIR/release/gitseal}"
AGENT="${AGENT:-$CARGO_TARGET_DIR/release/gitseal-agent}"
cp_bin=$(tests/controlplane/build.sh)

work=$(mktemp -d)
bg_pids=()
bench_cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap bench_cleanup EXIT

# bg_start LOG CMD... : runs CMD in the background (stdout and stderr to LOG), remembered
# for cleanup; its pid in $bg_pid.
bg_start() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  bg_pid=$!
  bg_pids+=("$bg_pid")
}

# bg_stop PID: stops one process started by bg_start.
bg_stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

now() { date +%s.%N; }

# Peak resident set size of a live process, in MiB.
peak_rss() {
  awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

# User + system CPU time of a live process, in seconds.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}

# The control plane, in the background; its ready line gives the kubeconfig.
"$cp_bin/gitseal-controlplane" -foreground > "$work/cp.out" 2>"$work/cp.err" &
bg_pids+=("$!")
cp_pid=$!
for _ in $(seq 1 360); do
  grep -q '^export KUBECONFIG=' "$work/cp.out" 2>/dev/null && break
  kill -0 "$cp_pid" 2>/dev/null || { cat "$work/cp.err" >&2; exit 1; }
  sleep 0.5
done
KUBECONFIG=$(sed -n 's/^export KUBECONFIG=//p' "$work/cp.out" | head -1)
export KUBECONFIG
echo "control plane up: KUBECONFIG=$KUBECONFIG" >&2
