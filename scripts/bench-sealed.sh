#!/usr/bin/env bash
# SealedSecret controller benchmark against the local control plane (tests/controlplane):
# COUNT SealedSecrets (two keys each, strict scope) exist before the controller starts, so all
# of them are queued at once; the figure is the time from the controller's start until every
# one has its Secret, and the controller process's peak RSS (VmHWM) by then.
#
#   gitseal-agent run (one process: the SealedSecret, GitSync, ResealRequest and sealing-key
#   controllers), watching the benchmark namespace;
#   and, unless BITNAMI=0, the Bitnami Sealed Secrets controller v0.40.0 in the same run on
#   the same number of its own SealedSecrets (sealed offline by kubeseal to a pre-made
#   4096-bit key, so neither side generates a key while timed). It is built from the module
#   folder scripts/peers.sh downloads (`go build ./cmd/controller`). It only runs in a pod
#   (rest.InClusterConfig), so it runs in a private mount namespace (`unshare -m`, root)
#   where a tmpfs holds the service account files a pod would have: a token for a
#   ServiceAccount bound to cluster-admin, and the control plane's CA. By default it runs
#   with its client-side rate limit off (--kubeclient-qps=-1), its fastest; with its
#   defaults (5 requests/s, burst 10) 1,000 objects take over ten minutes, so that run is
#   only made when asked for (BITNAMI_RUNS="unlimited default").
#
# Time is taken from the controller's start until a watch (`kubectl get secrets --watch`,
# started beforehand) has seen COUNT Secrets in the namespace.
#
# Usage: scripts/bench-sealed.sh [COUNT]      COUNT default 1000
#        BITNAMI=0 scripts/bench-sealed.sh    (gitseal only)
#        AGENT_ARGS="--reconcile-concurrency 16" scripts/bench-sealed.sh   (extra agent flags)
# Prints a Markdown table on stdout; progress on stderr.
count="${1:-1000}"
bitnami_runs="${BITNAMI_RUNS:-unlimited}"
if ! [[ "$count" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/bench-sealed.sh [COUNT]" >&2
  exit 2
fi
for r in $bitnami_runs; do
  case "$r" in unlimited|default) ;; *) echo "BITNAMI_RUNS: unlimited and/or default, not '$r'" >&2; exit 2 ;; esac
done
read -r -a agent_args <<< "${AGENT_ARGS:-}"
source "$(dirname "$0")/bench-lib.sh"

# secrets NAMESPACE FILE: COUNT plaintext Secrets, two keys each.
secrets() {
  python3 - "$1" "$2" "$count" <<'PY'
import base64, sys
ns, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
b64 = lambda s: base64.b64encode(s.encode()).decode()
with open(path, "w") as f:
    f.write("---\n".join(
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s-{i}, namespace: {ns}}}\n"
        f"data: {{password: {b64(f'pw-{i}')}, user: {b64('app')}}}\n"
        for i in range(count)))
PY
}

# watch_secrets NAMESPACE: starts a watch of the namespace's Secrets (names, one line per
# event) into $work/NAMESPACE.watch; its pid in $watch_pid.
watch_secrets() {
  bg_start "$work/$1.watch" kubectl -n "$1" get secrets --watch -o name
  watch_pid=$bg_pid
}

# timed_until_opened NAMESPACE PID: seconds from now until the watch of NAMESPACE has seen
# COUNT Secrets; also sets $hwm (peak RSS of PID then, MiB) and $cpu (its CPU time then).
timed_until_opened() {
  local ns=$1 pid=$2 start n=0
  start=$(now)
  for _ in $(seq 1 12000); do
    n=$(sort -u "$work/$ns.watch" | grep -c '^secret/' || true)
    [ "$n" -ge "$count" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "controller exited" >&2; return 1; }
    sleep 0.1
  done
  [ "$n" -ge "$count" ] || { echo "only $n of $count Secrets after 20 min" >&2; return 1; }
  elapsed=$(echo "$(now) - $start" | bc)
  hwm=$(peak_rss "$pid")
  cpu=$(cpu_seconds "$pid")
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- gitseal ---------------------------------------------------------------------------
"$AGENT" crds | kubectl apply --server-side -f - > /dev/null
kubectl wait --for=condition=Established crd/sealedsecrets.gitseal.dev > /dev/null
kubectl create namespace gitseal-system > /dev/null
kubectl create namespace bench-gitseal > /dev/null
"$GITSEAL" keys generate -w "$work/cluster.key" > "$work/pub"
kubectl -n gitseal-system create secret generic sealing-key-1 --from-file=identity="$work/cluster.key" > /dev/null
kubectl -n gitseal-system label secret sealing-key-1 gitseal.dev/sealing-key=active > /dev/null
secrets bench-gitseal "$work/gitseal-secrets.yaml"
"$GITSEAL" seal -r "$(cat "$work/pub")" -f "$work/gitseal-secrets.yaml" -w "$work/gitseal-sealed.yaml"
echo "creating $count gitseal SealedSecrets ..." >&2
kubectl apply --server-side -f "$work/gitseal-sealed.yaml" > /dev/null
echo "gitseal-agent run ${agent_args[*]} ..." >&2
watch_secrets bench-gitseal
bg_start "$work/agent.log" "$AGENT" run --namespace gitseal-system --watch-namespace bench-gitseal \
  --metrics-addr "127.0.0.1:$(free_port)" --health-addr "127.0.0.1:$(free_port)" \
  --cache-dir "$work/cache" --key-renewal 0 "${agent_args[@]}"
agent_pid=$bg_pid
timed_until_opened bench-gitseal "$agent_pid"
g_s=$elapsed g_hwm=$hwm g_cpu=$cpu
# Let it settle (status writes of the last objects), then the peak again.
sleep 5
g_hwm_settled=$(peak_rss "$agent_pid")
bg_stop "$agent_pid"
bg_stop "$watch_pid"
ready=$(kubectl -n bench-gitseal get sealedsecrets.gitseal.dev \
  -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)
echo "gitseal: $g_s s, $g_hwm MiB; $ready Ready" >&2

rows=()
ratios=()
rows+=("| gitseal-agent run ${agent_args[*]} | $(printf '%.2f' "$g_s") s | $g_cpu s | $g_hwm MiB ($g_hwm_settled MiB 5 s later) |")

# --- Bitnami ---------------------------------------------------------------------------
if [ "${BITNAMI:-1}" != 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "the Bitnami controller runs in a private mount namespace: run as root, or BITNAMI=0" >&2; exit 1; }
  peers=$(scripts/peers.sh kubeseal sealed-secrets-controller)
  src=$(go env GOMODCACHE)/github.com/bitnami-labs/sealed-secrets@v0.40.0
  kubectl apply --server-side -f "$src/helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml" > /dev/null
  kubectl wait --for=condition=Established crd/sealedsecrets.bitnami.com > /dev/null
  kubectl create namespace bitnami-system > /dev/null
  # Its key, made beforehand as the controller would (4096-bit RSA, self-signed).
  openssl req -x509 -newkey rsa:4096 -nodes -days 3650 -subj "/CN=sealed-secret/O=sealed-secret" \
    -keyout "$work/bitnami.key" -out "$work/bitnami.crt" 2>/dev/null
  kubectl -n bitnami-system create secret tls sealed-secrets-key --cert "$work/bitnami.crt" --key "$work/bitnami.key" > /dev/null
  kubectl -n bitnami-system label secret sealed-secrets-key sealedsecrets.bitnami.com/sealed-secrets-key=active > /dev/null
  kubectl -n bitnami-system create serviceaccount sealed-secrets > /dev/null
  kubectl create clusterrolebinding bench-sealed-secrets --clusterrole cluster-admin \
    --serviceaccount bitnami-system:sealed-secrets > /dev/null
  token=$(kubectl -n bitnami-system create token sealed-secrets --duration 2h)
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  hostport=${server#https://}
  mkdir -p "$work/sa"
  printf '%s' "$token" > "$work/sa/token"
  # The kubeconfig holds the CA inline or names its file.
  ca_data=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  if [ -n "$ca_data" ]; then
    printf '%s' "$ca_data" | base64 -d > "$work/sa/ca.crt"
  else
    cp "$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')" "$work/sa/ca.crt"
  fi
  printf 'bitnami-system' > "$work/sa/namespace"
  for run in $bitnami_runs; do
    ns="bench-bitnami-$run"
    kubectl create namespace "$ns" > /dev/null
    secrets "$ns" "$work/$ns.yaml"
    echo "sealing $count Secrets with kubeseal ($run) ..." >&2
    python3 - "$work/$ns.yaml" "$work/$ns.split" <<'PY'
import os, sys
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for i, doc in enumerate(open(src).read().split("---\n")):
    open(os.path.join(out, f"{i}.yaml"), "w").write(doc)
PY
    for f in "$work/$ns.split"/*.yaml; do
      "$peers/kubeseal" --cert "$work/bitnami.crt" --scope strict -o yaml < "$f"
      echo "---"
    done > "$work/$ns-sealed.yaml"
    kubectl apply --server-side -f "$work/$ns-sealed.yaml" > /dev/null
    qps=()
    [ "$run" = unlimited ] && qps=(--kubeclient-qps=-1)
    echo "Bitnami controller ($run) ..." >&2
    watch_secrets "$ns"
    # A pod's view: the service account files on a private tmpfs, the API server in the env.
    bg_start "$work/bitnami-$run.log" unshare -m --propagation private sh -c '
      set -e
      mkdir -p /var/run/secrets
      mount -t tmpfs tmpfs /var/run/secrets
      mkdir -p /var/run/secrets/kubernetes.io/serviceaccount
      cp "$1"/token "$1"/ca.crt "$1"/namespace /var/run/secrets/kubernetes.io/serviceaccount/
      shift
      exec "$@"' sh "$work/sa" \
      env KUBERNETES_SERVICE_HOST="${hostport%:*}" KUBERNETES_SERVICE_PORT="${hostport##*:}" \
        POD_NAMESPACE=bitnami-system \
        "$peers/sealed-secrets-controller" --all-namespaces=false --additional-namespaces="$ns" \
        --listen-addr "127.0.0.1:$(free_port)" --listen-metrics-addr "127.0.0.1:$(free_port)" \
        --key-renew-period 0 "${qps[@]}"
    b_pid=$bg_pid
    # The pid of the controller itself (sh execs env, which execs the controller).
    timed_until_opened "$ns" "$b_pid"
    b_s=$elapsed b_hwm=$hwm b_cpu=$cpu
    bg_stop "$b_pid"
    bg_stop "$watch_pid"
    echo "Bitnami ($run): $b_s s, $b_hwm MiB" >&2
    flags="defaults"
    [ "$run" = unlimited ] && flags="--kubeclient-qps=-1"
    rows+=("| Bitnami controller v0.40.0 ($flags) | $(printf '%.2f' "$b_s") s | $b_cpu s | $b_hwm MiB |")
    ratios+=("$(echo "scale=2; $b_s / $g_s" | bc) × ($flags)")
  done
fi

echo
echo "$count SealedSecrets (two keys each) created before the controller starts:"
echo
echo "| controller | start → every Secret seen | CPU time then | peak RSS (VmHWM) then |"
echo "| --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
echo "gitseal SealedSecrets Ready: $ready of $count"
if [ "${BITNAMI:-1}" != 0 ]; then
  echo "Bitnami time ÷ gitseal time: ${ratios[*]}"
fi
