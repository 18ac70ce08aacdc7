#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the repository's real examples: the test vectors of
# docs/FORMAT.md (sealed to test key A, which the sealed_open target holds), the manifests of
# examples/ and deploy/, keys.example. Files are named by their SHA-1, as libFuzzer names its
# own, so running this again adds nothing twice. Minimise afterwards (README, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."

add() { # target file
    local dir="fuzz/corpus/$1"
    mkdir -p "$dir"
    cp "$2" "$dir/$(sha1sum "$2" | cut -d' ' -f1)"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Sealed values: every vector's ciphertext, raw.
n=0
grep '^ciphertext: ' docs/FORMAT.md | cut -d' ' -f2 | while read -r b64; do
    n=$((n + 1))
    printf %s "$b64" | base64 -d >"$tmp/vector$n"
    add sealed_inspect "$tmp/vector$n"
    add sealed_open "$tmp/vector$n"
done

# Manifests: the examples and the agent's own deployment (CRDs included), plus a
# SealedSecret holding vector 1, the same as JSON, and a kind: List.
for f in $(find examples deploy -name '*.yaml' | sort); do
    add manifest "$f"
done
ct=$(grep -m1 '^ciphertext: ' docs/FORMAT.md | cut -d' ' -f2)
cat >"$tmp/sealed.yaml" <<EOF
apiVersion: gitseal.dev/v1alpha1
kind: SealedSecret
metadata:
  name: database-creds
  namespace: production
  labels: {app: db}
  annotations: {gitseal.dev/scope: strict}
spec:
  encryptedData:
    password: $ct
  template:
    type: Opaque
    metadata: {labels: {app: db}, annotations: {owner: team}}
---
apiVersion: v1
kind: Secret
metadata: {name: plain, namespace: production}
data: {username: YWRtaW4=}
stringData: {password: hunter2}
EOF
add manifest "$tmp/sealed.yaml"
cat >"$tmp/sealed.json" <<EOF
{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"gitseal.dev/v1alpha1","kind":"SealedSecret","metadata":{"name":"db","namespace":"prod","annotations":{"gitseal.dev/scope":"namespace"}},"spec":{"encryptedData":{"password":"$ct"}}}]}
EOF
add manifest "$tmp/sealed.json"
cat >"$tmp/anchors.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: &name app
  labels: &labels {app: *name, tier: web}
data: {a: "1"}
---
apiVersion: v1
kind: Service
metadata: {name: app, labels: *labels}
spec: {selector: *labels, ports: [{port: 80}]}
EOF
add manifest "$tmp/anchors.yaml"

# Rules files.
add rules keys.example
cat >"$tmp/rules.yaml" <<'EOF'
escrow: [age1uft73tvnpxj420uzr93nrvgz0r6u3yv5lj3rqvwe6tmput2eaq4qyaly0p]
rules:
  - path: 'clusters/{prod,staging}/**'
    name: clusters
    recipientsFile: clusters/prod.pub
  - path: '**'
    recipients: [age14p8w5r8pckh4dx2arvp9nk68c57dj7kvd3jjg75ml05swdx6p5zqe2hja0]
EOF
add rules "$tmp/rules.yaml"

for d in fuzz/corpus/*/; do
    echo "$d: $(find "$d" -type f | wc -l) file(s)"
done
