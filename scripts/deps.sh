#!/usr/bin/env bash
# Installs what gitseal's tests and quick start need on a fresh Debian machine, and skips
# whatever is already there: the Go `age` CLI (interop tests), git + git-daemon + openssh
# (real git servers on loopback), openssl (an RSA key for the kubeseal interop tests), jq
# (scripts/test.sh);
# kubectl's kustomize is used when present.
set -euo pipefail

need=()
command -v age >/dev/null 2>&1 || need+=(age)
command -v git >/dev/null 2>&1 || need+=(git)
[ -x /usr/lib/git-core/git-daemon ] || need+=(git)
[ -x /usr/lib/git-core/git-http-backend ] || need+=(git)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)   # kubeseal interop: an RSA key + cert
command -v flock >/dev/null 2>&1 || need+=(util-linux)  # scripts/peers.sh serialises builds
command -v script >/dev/null 2>&1 || need+=(bsdutils)  # a pseudo-terminal for the CLI tests
command -v jq >/dev/null 2>&1 || need+=(jq)            # scripts/test.sh lists the test binaries
command -v kill >/dev/null 2>&1 || need+=(procps)      # SIGSTOP/SIGCONT/SIGKILL in e2e tests

if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "deps: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
