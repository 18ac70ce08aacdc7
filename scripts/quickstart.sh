#!/usr/bin/env bash
# The main flow on this machine, no cluster needed: make keys, write the repository's key
# rules, seal a Secret, commit it to a git repository, lint the repository, and open the
# SealedSecret again with the offline escrow key (break-glass).
# Everything happens in a fresh temporary folder, printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/cargo-target}"
cargo build --quiet --locked -p gitseal-cli
GITSEAL="$CARGO_TARGET_DIR/debug/gitseal"

work=$(mktemp -d "${TMPDIR:-/tmp}/gitseal-quickstart.XXXXXX")
cd "$work"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. keys: one for the cluster (its agent would hold it), one offline escrow key"
"$GITSEAL" keys generate -o cluster.key
"$GITSEAL" keys generate -o escrow.key
ls -l cluster.key escrow.key

step "2. the repository's key rules (.gitseal.yaml; see keys.example)"
mkdir repo && cd repo && git init -q -b main
cat > .gitseal.yaml <<YAML
escrow:
  - $("$GITSEAL" keys public -i ../escrow.key)
rules:
  - name: demo
    path: "**"
    recipients:
      - $("$GITSEAL" keys public -i ../cluster.key)
YAML
cat .gitseal.yaml

step "3. seal: a Secret built in memory, sealed to the rules' keys; no plaintext file"
mkdir -p apps/demo
"$GITSEAL" create db-creds -n demo \
  --from-literal username=app --from-literal password="$(head -c 18 /dev/urandom | base64)" \
  -w apps/demo/db-creds.sealed.yaml
cat apps/demo/db-creds.sealed.yaml

step "4. commit it"
git add -A
git -c user.name=quickstart -c user.email=quickstart@example.invalid commit -q -m "demo: sealed db-creds"
git log --oneline --stat

step "5. check: the repository lint (what a pre-commit hook or PR job runs)"
"$GITSEAL" check .

step "6. a plaintext Secret committed by mistake is caught"
printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: oops, namespace: demo}\nstringData: {token: not-for-git}\n' > apps/demo/oops.yaml
if "$GITSEAL" check .; then echo "check should have failed" >&2; exit 1; fi
rm apps/demo/oops.yaml

step "7. break-glass: open it offline with the escrow key"
"$GITSEAL" unseal -i ../escrow.key -f apps/demo/db-creds.sealed.yaml | sed 's/\(password: \).*/\1<redacted in this demo>/'

printf '\nquick start done in %s\n' "$work"
