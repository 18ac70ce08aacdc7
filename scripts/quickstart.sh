#!/usr/bin/env bash
# The main flow on this machine, no cluster needed: make keys, write the repository's key
# rules, seal a Secret per environment, commit the example repository (a base and
# dev/staging/production overlays), lint it, run one agent pass in --plan mode (fetch,
# render with Kustomize, open the SealedSecrets in memory, print what would be applied with
# Secret values redacted), and open a SealedSecret offline with the escrow key.
# Everything happens in a fresh temporary folder, printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/cargo-target}"
cargo build --quiet --locked -p gitseal-cli -p gitseal-agent
GITSEAL="$CARGO_TARGET_DIR/debug/gitseal"
AGENT="$CARGO_TARGET_DIR/debug/gitseal-agent"

work=$(mktemp -d "${TMPDIR:-/tmp}/gitseal-quickstart.XXXXXX")
cd "$work"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. keys: one per cluster (its agent holds it) and one offline escrow key"
"$GITSEAL" keys generate -w production.key
"$GITSEAL" keys generate -w nonprod.key
"$GITSEAL" keys generate -w escrow.key
ls -l ./*.key

step "2. the example repository and its key rules (.gitseal.yaml; see keys.example)"
cp -r "$top/examples/gitops-repo" repo
cd repo
git init -q -b main
cat > .gitseal.yaml <<YAML
escrow:
  - $("$GITSEAL" keys public -i ../escrow.key)
rules:
  - name: production
    path: "apps/overlays/production/**"
    recipients: [$("$GITSEAL" keys public -i ../production.key)]
  - name: nonprod
    path: "**"
    recipients: [$("$GITSEAL" keys public -i ../nonprod.key)]
YAML
cat .gitseal.yaml

step "3. seal: one Secret per environment, built in memory, sealed to that environment's keys"
for env in dev staging production; do
  "$GITSEAL" create db-creds -n "$env" \
    --from-literal username=app --from-literal password="$env-$(head -c 12 /dev/urandom | base64)" \
    -w "apps/overlays/$env/db-creds.sealed.yaml"
done
cat apps/overlays/production/db-creds.sealed.yaml

step "4. commit"
git add -A
git -c user.name=quickstart -c user.email=quickstart@example.invalid commit -q -m "example apps with sealed db-creds"
git log --oneline --stat | cat

step "5. check: the repository lint (what a pre-commit hook or PR job runs)"
"$GITSEAL" check .

step "6. a plaintext Secret committed by mistake is caught"
printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: oops, namespace: dev}\nstringData: {token: not-for-git}\n' > apps/overlays/dev/oops.yaml
if "$GITSEAL" check .; then echo "check should have failed" >&2; exit 1; fi
rm apps/overlays/dev/oops.yaml

step "7. one agent pass, --plan (no cluster): production, with the production cluster's key"
"$AGENT" sync --url "file://$PWD" --path apps/overlays/production --identity ../production.key \
  --cache-dir ../agent-cache --plan

step "8. the non-production key cannot open production's secret"
if "$AGENT" sync --url "file://$PWD" --path apps/overlays/production --identity ../nonprod.key \
  --cache-dir ../agent-cache --plan >/dev/null; then
  echo "the wrong key should have failed" >&2; exit 1
fi

step "9. break-glass: open it offline with the escrow key"
"$GITSEAL" unseal -i ../escrow.key -f apps/overlays/production/db-creds.sealed.yaml \
  | sed 's/\(password: \).*/\1<redacted in this demo>/'

printf '\nquick start done in %s\n' "$work"
printf 'against a real cluster: tests/controlplane/run.sh, then\n  KUBECONFIG=... %s sync --url file://%s --path apps/overlays/dev --identity %s --once\n' \
  "$AGENT" "$work/repo" "$work/nonprod.key"
