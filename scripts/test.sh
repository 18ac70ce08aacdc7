#!/usr/bin/env bash
# Runs every test of gitseal on this machine, installing and building what they need first:
# Debian packages, then the Kubernetes control plane (etcd + kube-apiserver +
# kube-controller-manager built from Go modules, cached under ~/.cache/gitseal), the peer tools
# sops and kubeseal (scripts/peers.sh, cached likewise), then
# formatting and lint checks, then the whole cargo test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

# Build products are slow to make; keep them between checkouts on this machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/cargo-target}"

if [ -x tests/controlplane/build.sh ]; then
  echo "== control plane" >&2
  tests/controlplane/build.sh >/dev/null
fi

# sops and kubeseal, built from the Go module proxy (cached), for the import interop tests.
echo "== peer tools (sops, kubeseal)" >&2
scripts/peers.sh >/dev/null

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --locked --no-fail-fast
