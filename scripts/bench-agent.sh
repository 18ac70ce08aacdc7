#!/usr/bin/env bash
# Agent benchmark against the local control plane (tests/controlplane), all on this machine:
#   1. full pass: 1,000 objects (400 ConfigMaps, 200 Services, 200 Deployments, 200
#      SealedSecrets in 10 namespaces) applied by `gitseal-agent sync --once`, against
#      `kubectl apply --server-side` of the same objects already decrypted (into other
#      namespaces, so both start from nothing), same run;
#   2. no-op passes: a long-running `sync` whose later passes see an unchanged repository and
#      cluster: API reads, writes and time per pass from its own log;
#   3. the agent's peak RSS (VmHWM) with those 1,000 objects managed.
# Usage: scripts/bench-agent.sh   (N_NS=10 PER_NS=100 to change the size)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/cargo-target}"
[ -n "${AGENT:-}" ] || cargo build --quiet --release --locked -p gitseal-cli -p gitseal-agent
GITSEAL="${GITSEAL:-$CARGO_TARGET_DIR/release/gitseal}"
AGENT="${AGENT:-$CARGO_TARGET_DIR/release/gitseal-agent}"
bin=$(tests/controlplane/build.sh)

work=$(mktemp -d); cp_pid=""; agent_pid=""
cleanup() { [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; [ -n "$cp_pid" ] && kill "$cp_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The control plane, in the background; its ready line gives the kubeconfig.
"$bin/gitseal-controlplane" -foreground > "$work/cp.out" 2>"$work/cp.err" &
cp_pid=$!
for _ in $(seq 1 360); do
  grep -q '^export KUBECONFIG=' "$work/cp.out" 2>/dev/null && break
  kill -0 "$cp_pid" 2>/dev/null || { cat "$work/cp.err" >&2; exit 1; }
  sleep 0.5
done
KUBECONFIG=$(sed -n 's/^export KUBECONFIG=//p' "$work/cp.out" | head -1)
export KUBECONFIG
echo "control plane up: KUBECONFIG=$KUBECONFIG" >&2

"$GITSEAL" keys generate -w "$work/cluster.key" > "$work/pub"
PUB=$(cat "$work/pub")
N_NS="${N_NS:-10}" PER_NS="${PER_NS:-100}"

gen() { # gen DIR PREFIX SEALED(yes|no)
  python3 - "$1" "$2" "$N_NS" "$PER_NS" <<'PY'
import os, sys
d, prefix, n_ns, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(d, exist_ok=True)
for n in range(n_ns):
    ns = f"{prefix}-{n}"
    docs = [f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"]
    for i in range(per * 2 // 5):
        docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: {ns}}}\ndata: {{key: value-{i}, other: '{i * 7}'}}\n")
    for i in range(per // 5):
        docs.append(f"apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: {ns}}}\nspec: {{clusterIP: None, selector: {{app: app-{i}}}, ports: [{{port: 80}}]}}\n")
        docs.append(f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{i}, namespace: {ns}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: app-{i}}}}}\n  template:\n    metadata: {{labels: {{app: app-{i}}}}}\n    spec: {{containers: [{{name: app, image: 'nginx:1.27'}}]}}\n")
    with open(os.path.join(d, f"{ns}.yaml"), "w") as f:
        f.write("---\n".join(docs))
PY
}
gen "$work/repo/apps" bench-agent
gen "$work/plain" bench-kubectl
for n in $(seq 0 $((N_NS - 1))); do
  for i in $(seq 0 $((PER_NS / 5 - 1))); do
    "$GITSEAL" create "secret-$i" -n "bench-agent-$n" --from-literal password="p-$n-$i" --from-literal user=app \
      -r "$PUB" -w "$work/repo/apps/sealed-$n-$i.yaml"
    "$GITSEAL" create "secret-$i" -n "bench-kubectl-$n" --from-literal password="p-$n-$i" --from-literal user=app \
      -r "$PUB" | "$GITSEAL" unseal -i "$work/cluster.key" > "$work/plain/secret-$n-$i.yaml"
  done
done
git -C "$work/repo" init -q -b main
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=b -c user.email=b@example.invalid commit -q -m bench
objects=$(grep -h '^kind:' -r "$work/repo/apps" | grep -vc Namespace)
echo "objects: $objects (+ $N_NS namespaces)" >&2

# Services are headless: the test control plane's service range is small.
# 1. kubectl apply --server-side of the decrypted objects (namespaces first, like the agent).
start=$(date +%s.%N)
kubectl apply --server-side --field-manager bench -f "$work/plain" -R > /dev/null 2>"$work/kubectl.err" || {
  # Namespaces may not exist on the first try within one invocation; apply again.
  kubectl apply --server-side --field-manager bench -f "$work/plain" -R > /dev/null
}
kubectl_s=$(echo "$(date +%s.%N) - $start" | bc)

# 2. the agent: one full pass, then no-op passes, in one long-running process.
"$AGENT" sync --url "file://$work/repo" --path apps --identity "$work/cluster.key" --prune \
  --interval 2s --namespace default --name bench --cache-dir "$work/cache" 2> "$work/agent.log" &
agent_pid=$!
for _ in $(seq 1 600); do
  [ "$(grep -c 'pass done' "$work/agent.log")" -ge 4 ] && break
  grep -q 'pass failed' "$work/agent.log" && { grep 'pass failed' "$work/agent.log" | head -3 >&2; exit 1; }
  sleep 0.5
done
hwm=$(awk '/VmHWM/ {print $2, $3}' "/proc/$agent_pid/status")
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=""
grep 'pass done' "$work/agent.log" | sed 's/\x1b\[[0-9;]*m//g' > "$work/passes"
field() { sed -n "$1p" "$work/passes" | grep -o "$2=[0-9]*" | cut -d= -f2; }
full_ms=$(field 1 millis)
echo
echo "| measure | value |"
echo "| --- | --- |"
echo "| objects | $objects in $N_NS namespaces ($((N_NS * PER_NS / 5)) SealedSecrets) |"
echo "| kubectl apply --server-side (decrypted), wall | ${kubectl_s} s |"
echo "| agent full pass (fetch, render, decrypt, apply) | $(echo "scale=3; $full_ms / 1000" | bc) s, $(field 1 api_reads) reads, $(field 1 api_writes) writes |"
echo "| ratio agent / kubectl | $(echo "scale=2; $full_ms / 1000 / $kubectl_s" | bc) |"
for p in 2 3 4; do
  echo "| no-op pass $p | $(field $p millis) ms, $(field $p api_reads) reads, $(field $p api_writes) writes |"
done
echo "| agent peak RSS (VmHWM) | $hwm |"
