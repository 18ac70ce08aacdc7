#!/usr/bin/env bash
# Starts a local control plane (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1) in
# the foreground, building it first if needed. Prints `export KUBECONFIG=...`; Ctrl-C stops it
# and removes everything it created. Extra arguments go to the launcher (e.g. -keep, -timeout 5m).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$("$here/build.sh")"
exec "$bin/gitseal-controlplane" -foreground "$@"
