#!/usr/bin/env bash
# Whole-process benchmark on one Secret with 1,000 keys (32 random bytes each), one
# recipient, against the peers on the same data in the same run (hyperfine):
#
#   seal:   gitseal seal        vs  sops --encrypt (age)  vs  kubeseal --cert (offline)
#   open:   gitseal unseal      vs  sops -d               vs  kubeseal --recovery-unseal
#
# Each open reads what its own tool sealed in the first half. Ratios (peer mean / gitseal
# mean) are printed at the end: they are the figures to quote, since both sides ran
# interleaved under the same load. Peers come from scripts/peers.sh (built from the Go
# module proxy, cached in ~/.cache/gitseal/peers).
#
#   scripts/bench-seal.sh            # gitseal + the peers
#   PEERS=0 scripts/bench-seal.sh    # gitseal only
#   RUNS=20 scripts/bench-seal.sh    # more runs per command (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/cargo-target}"
cargo build --quiet --release --locked -p gitseal-cli
GITSEAL="$CARGO_TARGET_DIR/release/gitseal"

sops="" kubeseal=""
if [ "${PEERS:-1}" = 1 ]; then
  if peers=$(scripts/peers.sh); then
    sops="$peers/sops" kubeseal="$peers/kubeseal"
  else
    echo "bench: the peers could not be built; gitseal only" >&2
  fi
fi

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 - "$work/secret.yaml" <<'PY'
import os, sys, base64
with open(sys.argv[1], "w") as f:
    f.write("apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\n  namespace: bench\ndata:\n")
    for i in range(1000):
        f.write(f"  key-{i:04d}: {base64.b64encode(os.urandom(32)).decode()}\n")
PY
"$GITSEAL" keys generate -w "$work/key.txt" > "$work/pub" 2>/dev/null
PUB=$(cat "$work/pub")
runs="${RUNS:-15}"

seal=(-n "gitseal seal" "$GITSEAL seal -f $work/secret.yaml -r $PUB -w $work/out-gitseal.yaml")
open=(-n "gitseal unseal" "$GITSEAL unseal -i $work/key.txt -f $work/out-gitseal.yaml > $work/open-gitseal.yaml")
if [ -n "$sops" ]; then
  seal+=(-n "sops --encrypt" "$sops --encrypt --age $PUB --encrypted-regex '^(data|stringData)$' $work/secret.yaml > $work/out-sops.yaml")
  open+=(-n "sops -d" "SOPS_AGE_KEY_FILE=$work/key.txt $sops -d $work/out-sops.yaml > $work/open-sops.yaml")
fi
if [ -n "$kubeseal" ]; then
  openssl req -x509 -nodes -newkey rsa:4096 -keyout "$work/k.pem" -out "$work/cert.pem" \
    -subj "/CN=sealed-secret/O=sealed-secret" -days 30 2>/dev/null
  seal+=(-n "kubeseal --cert" "$kubeseal --cert $work/cert.pem --format yaml < $work/secret.yaml > $work/out-kubeseal.yaml")
  open+=(-n "kubeseal --recovery-unseal" "$kubeseal --recovery-unseal --recovery-private-key $work/k.pem --format yaml < $work/out-kubeseal.yaml > $work/open-kubeseal.yaml")
fi

hyperfine --warmup 2 --runs "$runs" --export-json "$work/seal.json" --export-markdown "$work/seal.md" "${seal[@]}" >&2
# Every tool must open what it sealed to the same 1,000 values before its time counts.
hyperfine --warmup 2 --runs "$runs" --export-json "$work/open.json" --export-markdown "$work/open.md" "${open[@]}" >&2
python3 - "$work" <<'PY'
import base64, glob, json, os, sys, yaml
work = sys.argv[1]
want = yaml.safe_load(open(f"{work}/secret.yaml"))["data"]
for f in sorted(glob.glob(f"{work}/open-*.yaml")):
    doc = yaml.safe_load(open(f))
    got = doc.get("data") or {}
    if {k: base64.b64decode(v) for k, v in got.items()} != {k: base64.b64decode(v) for k, v in want.items()}:
        sys.exit(f"bench: {os.path.basename(f)} does not hold the 1,000 original values")
PY
for phase in seal open; do
  echo "### $phase"
  cat "$work/$phase.md"
  python3 - "$work/$phase.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]
for o in r[1:]:
    print(f"- {o['command']} / {base['command']}: {o['mean'] / base['mean']:.2f} x (means; min {o['min'] / base['min']:.2f} x)")
PY
  echo
done
for f in "$work"/out-*.yaml; do printf '%s: %s bytes\n' "$(basename "$f")" "$(wc -c < "$f")"; done
