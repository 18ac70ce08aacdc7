#!/usr/bin/env bash
# Agent benchmark against the local control plane (tests/controlplane), all on this machine:
#   1. full pass: OBJECTS objects (per 100: 40 ConfigMaps, 20 headless Services, 20
#      Deployments, 20 SealedSecrets with two keys, in one namespace each) applied by
#      `gitseal-agent sync`, against `kubectl apply --server-side` of the same objects already
#      decrypted (into other namespaces, so both start from nothing), same run;
#   2. no-op passes: the same long-running `sync` whose later passes see an unchanged
#      repository and cluster: API reads, writes and time per pass from its own log;
#   3. the agent's peak RSS (VmHWM) with those objects managed, and what it is made of
#      (anonymous memory and the binary's own pages, sampled every 0.1 s).
#
# Usage: scripts/bench-agent.sh [OBJECTS]     OBJECTS: a multiple of 100, default 1000
#        KUBECTL=0 scripts/bench-agent.sh 10000   (skip the kubectl baseline)
#        AGENT=path/to/gitseal-agent GITSEAL=path/to/gitseal ...   (no cargo build)
#        PASSES=40 scripts/bench-agent.sh 10000   (run 40 passes, not 4: memory over time)
# Prints a Markdown table on stdout; progress on stderr.
objects_wanted="${1:-1000}"
if ! [[ "$objects_wanted" =~ ^[1-9][0-9]*00$ ]]; then
  echo "usage: scripts/bench-agent.sh [OBJECTS]   (a multiple of 100, e.g. 1000 or 10000)" >&2
  exit 2
fi
passes=${PASSES:-4}
if ! [[ "$passes" =~ ^[0-9]+$ ]] || [ "$passes" -lt 4 ]; then
  echo "PASSES must be a number, at least 4" >&2
  exit 2
fi
source "$(dirname "$0")/bench-lib.sh"
N_NS=$((objects_wanted / 100))
PER_NS=100

"$GITSEAL" keys generate -w "$work/cluster.key" > "$work/pub"
PUB=$(cat "$work/pub")

# gen DIR PREFIX SECRETS: the plain objects of each namespace into DIR/<ns>.yaml, and its
# Secrets (plaintext) into SECRETS/<ns>.yaml.
gen() {
  python3 - "$1" "$2" "$3" "$N_NS" "$PER_NS" <<'PY'
import base64, os, sys
d, prefix, sdir, n_ns, per = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
os.makedirs(d, exist_ok=True)
os.makedirs(sdir, exist_ok=True)
b64 = lambda s: base64.b64encode(s.encode()).decode()
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
    secrets = [
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: secret-{i}, namespace: {ns}}}\n"
        f"data: {{password: {b64(f'p-{n}-{i}')}, user: {b64('app')}}}\n"
        for i in range(per // 5)
    ]
    with open(os.path.join(sdir, f"{ns}.yaml"), "w") as f:
        f.write("---\n".join(secrets))
PY
}
echo "generating $objects_wanted objects in $N_NS namespaces, twice" >&2
gen "$work/repo/apps" bench-agent "$work/secrets"
gen "$work/plain" bench-kubectl "$work/plain/secrets"
# The agent's repository holds SealedSecrets (one file per namespace), kubectl's the Secrets.
for f in "$work/secrets"/*.yaml; do
  "$GITSEAL" seal -r "$PUB" -f "$f" -w "$work/repo/apps/sealed-$(basename "$f")"
done
git -C "$work/repo" init -q -b main
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=b -c user.email=b@example.invalid commit -q -m bench
objects=$(grep -h '^kind:' -r "$work/repo/apps" | grep -vc Namespace)
sealed=$(grep -h '^kind: SealedSecret' -r "$work/repo/apps" | wc -l)
echo "objects: $objects (+ $N_NS namespaces), $sealed SealedSecrets" >&2

# 1. kubectl apply --server-side of the decrypted objects (namespaces first, like the agent).
kubectl_s="not run (KUBECTL=0)"
if [ "${KUBECTL:-1}" != 0 ]; then
  echo "kubectl apply --server-side ..." >&2
  start=$(now)
  kubectl apply --server-side --field-manager bench -f "$work/plain" -R > /dev/null 2>"$work/kubectl.err" || {
    # Namespaces may not exist on the first try within one invocation; apply again.
    kubectl apply --server-side --field-manager bench -f "$work/plain" -R > /dev/null
  }
  kubectl_s="$(echo "$(now) - $start" | bc) s"
fi

# 2. the agent: one full pass, then no-op passes, in one long-running process.
echo "gitseal-agent sync ..." >&2
bg_start "$work/agent.log" "$AGENT" sync --url "file://$work/repo" --path apps \
  --identity "$work/cluster.key" --prune --interval 2s --namespace default --name bench \
  --cache-dir "$work/cache"
agent_pid=$bg_pid
# RssAnon and RssFile (KiB) every 0.1 s, one line per sample.
( while kill -0 "$agent_pid" 2>/dev/null; do
    awk '/RssAnon|RssFile/ {printf "%s ", $2} END {print ""}' "/proc/$agent_pid/status" 2>/dev/null
    sleep 0.1
  done > "$work/rss" ) &
bg_pids+=("$!")
for _ in $(seq 1 $((passes * 300))); do
  [ "$(grep -c 'pass done' "$work/agent.log")" -ge "$passes" ] && break
  grep -q 'pass failed' "$work/agent.log" && { grep 'pass failed' "$work/agent.log" | head -3 >&2; exit 1; }
  kill -0 "$agent_pid" 2>/dev/null || { tail -5 "$work/agent.log" >&2; exit 1; }
  sleep 0.5
done
hwm=$(peak_rss "$agent_pid")
# The sample with the most resident memory: its two parts, in MiB.
parts=$(awk 'NF == 2 && $1 + $2 > max {max = $1 + $2; a = $1; f = $2}
  END {printf "%.1f MiB anonymous + %.1f MiB file-backed (the binary)", a / 1024, f / 1024}' "$work/rss")
last_anon=$(awk 'NF == 2 {a = $1} END {printf "%.1f", a / 1024}' "$work/rss")
cpu=$(cpu_seconds "$agent_pid")
bg_stop "$agent_pid"
grep 'pass done' "$work/agent.log" | sed 's/\x1b\[[0-9;]*m//g' > "$work/passes"
field() { sed -n "$1p" "$work/passes" | grep -o "$2=[0-9]*" | cut -d= -f2; }
full_ms=$(field 1 millis)
ratio="-"
if [ "${KUBECTL:-1}" != 0 ]; then
  ratio=$(echo "scale=3; $full_ms / 1000 / ${kubectl_s% s}" | bc)
fi
echo
echo "| measure | value |"
echo "| --- | --- |"
echo "| objects | $objects in $N_NS namespaces ($sealed SealedSecrets, $((sealed * 2)) values) |"
echo "| kubectl apply --server-side -R (decrypted), wall | $kubectl_s |"
echo "| agent full pass (fetch, render, decrypt, apply) | $(echo "scale=3; $full_ms / 1000" | bc) s, $(field 1 api_reads) reads, $(field 1 api_writes) writes |"
echo "| ratio agent / kubectl | $ratio |"
shown="2 3 4"
[ "$passes" -gt 4 ] && shown="$shown $passes"
for p in $shown; do
  echo "| no-op pass $p | $(field $p millis) ms, $(field $p api_reads) reads, $(field $p api_writes) writes |"
done
echo "| agent peak RSS (VmHWM) over the $passes passes | $hwm MiB |"
echo "| its largest sample (every 0.1 s) | $parts |"
echo "| anonymous memory at the end of pass $passes | $last_anon MiB |"
echo "| agent CPU time (user + system) over the $passes passes | $cpu s |"
