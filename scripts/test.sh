#!/usr/bin/env bash
# Runs every test of gitseal on this machine, installing and building what they need first:
# Debian packages, then the Kubernetes control plane (etcd + kube-apiserver +
# kube-controller-manager built from Go modules, cached under ~/.cache/gitseal), the peer tools
# sops, kubeseal, helm and kustomize (scripts/peers.sh, cached likewise), then
# formatting and lint checks, then the whole cargo test suite (the slow scenario binaries
# beside the rest).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

# Build products are slow to make; keep them between checkouts on this machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/cargo-target}"

if [ -x tests/controlplane/build.sh ]; then
  echo "== control plane" >&2
  tests/controlplane/build.sh >/dev/null
fi

# sops and kubeseal (import interop tests), helm (chart tests) and kustomize (image-contract
# test), built from the Go module proxy (cached).
echo "== peer tools (sops, kubeseal, helm, kustomize)" >&2
scripts/peers.sh >/dev/null

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
# `cargo test` runs test binaries one after another. The slow end-to-end scenarios (each a
# minute or more, mostly waiting: a 60 s API server freeze, lease expiry, 20,000 objects)
# have test binaries of their own and run beside all the rest, so the wall time is the
# longest of the two rows, not their sum. Each test binary runs in its package folder, as
# cargo runs it.
slow=(freeze_e2e scale_e2e ha_e2e)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics >"$work/build.json"
jq -r 'select(.reason == "compiler-artifact" and .executable != null and .profile.test)
       | [.target.name, .executable, (.manifest_path | sub("/Cargo.toml$"; ""))] | @tsv' \
  "$work/build.json" | sort -u >"$work/tests.tsv"
is_slow() { local n; for n in "${slow[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }
declare -A pid
for name in "${slow[@]}"; do
  IFS=$'\t' read -r _ exe dir < <(awk -F'\t' -v n="$name" '$1 == n' "$work/tests.tsv") \
    || { echo "test binary $name not found" >&2; exit 1; }
  (cd "$dir" && exec "$exe") >"$work/$name.log" 2>&1 &
  pid[$name]=$!
done
failed=()
while IFS=$'\t' read -r name exe dir; do
  is_slow "$name" && continue
  echo "     Running $name ($exe)"
  (cd "$dir" && "$exe") || failed+=("$name")
done <"$work/tests.tsv"
cargo test --workspace --locked --doc || failed+=(doctests)
for name in "${slow[@]}"; do
  echo "     Running $name (beside the others)"
  wait "${pid[$name]}" || failed+=("$name")
  cat "$work/$name.log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed test binaries: ${failed[*]}" >&2
  exit 1
fi
