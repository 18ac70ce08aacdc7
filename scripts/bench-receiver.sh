#!/usr/bin/env bash
# Commit → applied with a push webhook, against the local control plane (tests/controlplane):
#
#   a repository of 1,000 objects (400 ConfigMaps, 200 headless Services, 200 Deployments,
#   200 SealedSecrets with two keys) in one namespace, served by `git daemon` on loopback from
#   a bare repository whose post-receive hook sends GitHub's push event, signed with the
#   Receiver's token (X-Hub-Signature-256, X-GitHub-Delivery), to `gitseal-agent run
#   --webhook-addr`; the GitSync's interval is an hour, so only the webhook starts passes.
#   Each round commits a change to 10 ConfigMaps, pushes it, and takes the time from just
#   before `git push` to the agent's `pass done` log line for that commit (same clock).
#
#   Baseline, same run: the same rounds with the hook switched off and the GitSync polling
#   every BASELINE_INTERVAL seconds (default 30; a GitSync's default interval is 1m), i.e.
#   without a webhook; each of those commits waits a random time (uniform within one
#   interval) first, as a commit made at any moment would.
#
# Usage: scripts/bench-receiver.sh [ROUNDS]     ROUNDS default 40 (baseline: BASELINE_ROUNDS, 5)
#        BASELINE_ROUNDS=0 scripts/bench-receiver.sh   (webhook only)
# Prints a Markdown table on stdout; progress on stderr.
rounds="${1:-40}"
baseline_rounds="${BASELINE_ROUNDS:-5}"
baseline_interval="${BASELINE_INTERVAL:-30}"
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ && "$baseline_rounds" =~ ^[0-9]+$ && "$baseline_interval" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/bench-receiver.sh [ROUNDS]" >&2
  exit 2
fi
source "$(dirname "$0")/bench-lib.sh"
NS=bench-recv
TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
git_() { git -c user.name=bench -c user.email=bench@example.invalid -c init.defaultBranch=main "$@"; }

# --- cluster side ----------------------------------------------------------------------
"$AGENT" crds | kubectl apply --server-side -f - > /dev/null
kubectl wait --for=condition=Established crd/gitsyncs.gitseal.dev crd/receivers.gitseal.dev > /dev/null
kubectl create namespace gitseal-system > /dev/null
kubectl create namespace "$NS" > /dev/null
"$GITSEAL" keys generate -w "$work/cluster.key" > "$work/pub"
kubectl -n gitseal-system create secret generic sealing-key-1 --from-file=identity="$work/cluster.key" > /dev/null
kubectl -n gitseal-system label secret sealing-key-1 gitseal.dev/sealing-key=active > /dev/null
kubectl -n "$NS" create secret generic hook-token --from-literal=token="$TOKEN" > /dev/null
kubectl -n "$NS" label secret hook-token gitseal.dev/receiver-token=true > /dev/null

# --- the repository: 1,000 objects in $NS ------------------------------------------------
mkdir -p "$work/src/apps"
python3 - "$work/src/apps" "$work/secrets.yaml" "$NS" <<'PY'
import base64, os, sys
d, secrets, ns = sys.argv[1], sys.argv[2], sys.argv[3]
b64 = lambda s: base64.b64encode(s.encode()).decode()
docs = []
for i in range(400):
    docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: {ns}}}\ndata: {{key: value-0, other: '{i * 7}'}}\n")
for i in range(200):
    docs.append(f"apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: {ns}}}\nspec: {{clusterIP: None, selector: {{app: app-{i}}}, ports: [{{port: 80}}]}}\n")
    docs.append(f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{i}, namespace: {ns}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: app-{i}}}}}\n  template:\n    metadata: {{labels: {{app: app-{i}}}}}\n    spec: {{containers: [{{name: app, image: 'nginx:1.27'}}]}}\n")
# ten ConfigMaps per file, so a round's change touches one file
for f in range(0, len(docs), 10):
    with open(os.path.join(d, f"objects-{f // 10:03}.yaml"), "w") as out:
        out.write("---\n".join(docs[f:f + 10]))
with open(secrets, "w") as out:
    out.write("---\n".join(
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: secret-{i}, namespace: {ns}}}\n"
        f"data: {{password: {b64(f'p-{i}')}, user: {b64('app')}}}\n" for i in range(200)))
PY
"$GITSEAL" seal -r "$(cat "$work/pub")" -f "$work/secrets.yaml" -w "$work/src/apps/sealed.yaml"
git_ -C "$work/src" init -q
git_ -C "$work/src" add -A
git_ -C "$work/src" commit -q -m objects
git_ init -q --bare "$work/srv/repo.git"
git_ -C "$work/src" push -q "$work/srv/repo.git" main
git_ -C "$work/src" remote add origin "$work/srv/repo.git"
daemon_port=$(free_port)
bg_start "$work/daemon.log" git daemon --reuseaddr --export-all --base-path="$work/srv" \
  --listen=127.0.0.1 --port="$daemon_port" "$work/srv"

# The git host's webhook: GitHub's push event, signed with the token (read from a file the
# hook finds beside it; switched off by removing that file).
cat > "$work/srv/repo.git/hooks/post-receive" <<'PY'
#!/usr/bin/env python3
import hashlib, hmac, json, os, sys, urllib.request
conf = os.path.join(os.environ.get("GIT_DIR", "."), "webhook.json")
if not os.path.exists(conf):
    sys.exit(0)
c = json.load(open(conf))
for line in sys.stdin:
    old, new, ref = line.split()
    body = json.dumps({"ref": ref, "before": old, "after": new}).encode()
    sig = "sha256=" + hmac.new(c["token"].encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(c["url"], data=body, method="POST", headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": new, "X-Hub-Signature-256": sig})
    try:
        code = urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        code = e.code
    print(f"webhook: {code}", file=sys.stderr)
PY
chmod +x "$work/srv/repo.git/hooks/post-receive"

# --- the agent ---------------------------------------------------------------------------
webhook_port=$(free_port)
bg_start "$work/agent.log" "$AGENT" --log-format json run --namespace gitseal-system \
  --watch-namespace "$NS" --metrics-addr "127.0.0.1:$(free_port)" \
  --health-addr "127.0.0.1:$(free_port)" --cache-dir "$work/cache" --key-renewal 0 \
  --webhook-addr "127.0.0.1:$webhook_port"
agent_pid=$bg_pid

gitsync() { # gitsync INTERVAL
  kubectl apply --server-side -f - > /dev/null <<EOF
apiVersion: gitseal.dev/v1alpha1
kind: GitSync
metadata: {name: apps, namespace: $NS}
spec: {url: "git://127.0.0.1:$daemon_port/repo.git", ref: {branch: main}, path: apps, interval: "$1", prune: true}
EOF
}
gitsync 1h
kubectl apply --server-side -f - > /dev/null <<EOF
apiVersion: gitseal.dev/v1alpha1
kind: Receiver
metadata: {name: push, namespace: $NS}
spec: {type: github, gitSyncRef: {name: apps}, secretRef: {name: hook-token}}
EOF
kubectl -n "$NS" wait --for=condition=Ready --timeout=300s gitsync/apps receiver/push > /dev/null
path=$(kubectl -n "$NS" get receiver push -o jsonpath='{.status.webhookPath}')
echo "GitSync applied; Receiver at $path" >&2

# The time of the agent's `pass done` line for revision $1 (unix seconds), once it is logged.
pass_done_at() {
  python3 - "$work/agent.log" "$1" <<'PY'
import datetime, json, sys, time
log, sha = sys.argv[1], sys.argv[2]
deadline = time.time() + 600
while time.time() < deadline:
    for line in open(log):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        f = e.get("fields", {})
        if f.get("message") == "pass done" and f.get("revision", "").endswith(sha):
            ts = e["timestamp"].replace("Z", "+00:00")
            # Python before 3.11 reads at most microseconds.
            head, _, frac = ts.partition(".")
            frac, tz = frac[:-6], frac[-6:]
            print(datetime.datetime.fromisoformat(f"{head}.{frac[:6]}{tz}").timestamp())
            sys.exit(0)
    time.sleep(0.02)
sys.exit("no pass done for " + sha)
PY
}

# round N FILE: change 10 ConfigMaps, commit, push; prints the latency in seconds.
round() {
  local n=$1 f sha t0 t1
  f=$(printf '%s/src/apps/objects-%03d.yaml' "$work" $(( (n * 7) % 40 )))
  sed -i "s/key: value-[0-9]*/key: value-$n/" "$f"
  git_ -C "$work/src" commit -q -am "round $n"
  sha=$(git_ -C "$work/src" rev-parse HEAD)
  t0=$(now)
  git_ -C "$work/src" push -q origin main 2>>"$work/push.log"
  t1=$(pass_done_at "$sha")
  echo "$t1 - $t0" | bc
}

stats() { # stats LABEL < latencies
  python3 -c '
import statistics, sys
xs = sorted(float(x) for x in sys.stdin.read().split())
q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]
print(f"| {sys.argv[1]} | {len(xs)} | {statistics.median(xs):.3f} s | {q(0.95):.3f} s | {xs[0]:.3f} s | {xs[-1]:.3f} s |")' "$1"
}

printf '{"token": "%s", "url": "http://127.0.0.1:%s%s"}\n' "$TOKEN" "$webhook_port" "$path" \
  > "$work/srv/repo.git/webhook.json"
: > "$work/webhook.lat"
for n in $(seq 1 "$rounds"); do
  lat=$(round "$n")
  echo "round $n (webhook): $lat s" >&2
  echo "$lat" >> "$work/webhook.lat"
  sleep 0.5
done
hwm=$(peak_rss "$agent_pid")
grep -c 'webhook: 202' "$work/push.log" > "$work/accepted" || true

: > "$work/poll.lat"
if [ "$baseline_rounds" -gt 0 ]; then
  rm "$work/srv/repo.git/webhook.json"
  gitsync "${baseline_interval}s"
  for n in $(seq $((rounds + 1)) $((rounds + baseline_rounds))); do
    sleep "$(python3 -c "import random; print(round(random.uniform(0, $baseline_interval), 2))")"
    lat=$(round "$n")
    echo "round $n (polling every ${baseline_interval}s): $lat s" >&2
    echo "$lat" >> "$work/poll.lat"
  done
fi

last=$((rounds + baseline_rounds))
applied=$(kubectl -n "$NS" get configmap -o jsonpath='{range .items[*]}{.data.key}{"\n"}{end}' | grep -c "^value-$last$" || true)
echo
echo "1,000 objects (200 SealedSecrets), 10 ConfigMaps changed per commit; time from \`git push\` to the agent's \`pass done\` for that commit:"
echo
echo "| trigger | commits | p50 | p95 | min | max |"
echo "| --- | --- | --- | --- | --- | --- |"
stats "push webhook (GitHub signature, $(cat "$work/accepted") × 202)" < "$work/webhook.lat"
if [ "$baseline_rounds" -gt 0 ]; then
  stats "no webhook, interval ${baseline_interval}s" < "$work/poll.lat"
fi
echo
echo "ConfigMaps holding the last commit's value: $applied of 10; agent peak RSS (VmHWM): $hwm MiB"
