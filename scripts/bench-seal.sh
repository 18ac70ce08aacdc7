#!/usr/bin/env bash
# Whole-process benchmark: seal one Secret with 1,000 keys (32 random bytes each), one
# recipient, with gitseal — and, when they can be built here from the Go module proxy, with
# sops + age and kubeseal (offline, --cert) on the same input. Uses hyperfine.
#
#   scripts/bench-seal.sh            # gitseal + whichever peers build
#   PEERS=0 scripts/bench-seal.sh    # gitseal only
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null; }
command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/cargo-target}"
cargo build --quiet --release --locked -p gitseal-cli
GITSEAL="$CARGO_TARGET_DIR/release/gitseal"

peers="${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/peers"
mkdir -p "$peers"
if [ "${PEERS:-1}" = 1 ]; then
  [ -x "$peers/sops" ] || GOBIN="$peers" GOFLAGS=-mod=mod go install github.com/getsops/sops/v3/cmd/sops@v3.13.3 2>/dev/null || echo "bench: sops could not be built; skipped" >&2
  [ -x "$peers/kubeseal" ] || GOBIN="$peers" GOFLAGS=-mod=mod go install github.com/bitnami-labs/sealed-secrets/cmd/kubeseal@v0.27.1 2>/dev/null || echo "bench: kubeseal could not be built; skipped" >&2
fi

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 - "$work/secret.yaml" <<'PY'
import os, sys, base64
with open(sys.argv[1], "w") as f:
    f.write("apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\n  namespace: bench\ndata:\n")
    for i in range(1000):
        f.write(f"  key-{i:04d}: {base64.b64encode(os.urandom(32)).decode()}\n")
PY
"$GITSEAL" keys generate -w "$work/key.txt" > "$work/pub"
PUB=$(cat "$work/pub")
cmds=(-n gitseal "$GITSEAL seal -f $work/secret.yaml -r $PUB -w $work/out-gitseal.yaml")
if [ -x "$peers/sops" ]; then
  cmds+=(-n "sops+age" "$peers/sops --encrypt --age $PUB --encrypted-regex '^(data|stringData)$' $work/secret.yaml > $work/out-sops.yaml")
fi
if [ -x "$peers/kubeseal" ]; then
  openssl req -x509 -nodes -newkey rsa:4096 -keyout "$work/k.pem" -out "$work/cert.pem" -subj "/CN=sealed-secret/O=sealed-secret" -days 30 2>/dev/null
  cmds+=(-n kubeseal "$peers/kubeseal --cert $work/cert.pem --format yaml < $work/secret.yaml > $work/out-kubeseal.yaml")
fi
hyperfine --warmup 2 --runs "${RUNS:-10}" --export-markdown "$work/result.md" "${cmds[@]}" >&2
cat "$work/result.md"
for f in "$work"/out-*.yaml; do printf '%s: %s bytes\n' "$(basename "$f")" "$(wc -c < "$f")"; done
