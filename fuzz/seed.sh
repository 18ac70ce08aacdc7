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

# Key backups: test keys A and B of docs/FORMAT.md as two key Secrets.
key() { grep -m1 "^$1: " docs/FORMAT.md | cut -d' ' -f2; }
cat >"$tmp/backup.txt" <<EOF
# gitseal sealing keys of namespace gitseal-system, 2026-11-27T00:00:00Z
# restore: gitseal keys restore -i IDENTITY -f THIS-FILE
# gitseal-key-secret: gitseal-key-acc3b61e active 2026-11-26T00:00:00Z
# created: 2026-11-26T00:00:00Z
# public key: $(key A-recipient)
$(key A)
# gitseal-key-secret: gitseal-key-89ec433f retired
$(key B)
EOF
add key_backup "$tmp/backup.txt"

# Git refs and source URLs, one per file.
i=0
for r in main refs/heads/main branch:main tag:v1.0 refs/tags/v1.0 \
    commit:0123456789abcdef0123456789abcdef01234567 0123456789ABCDEF0123456789ABCDEF01234567 \
    0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef release/2026.11; do
    i=$((i + 1))
    printf %s "$r" >"$tmp/ref$i"
    add git_ref "$tmp/ref$i"
done
for u in https://git.example.com/team/cluster.git 'https://user:p%40ss@git.example.com:8443/r.git?x=1#f' \
    ssh://git@git.example.com:2222/team/cluster.git 'ssh://u:pw@h/r' git@github.com:team/cluster.git \
    git://127.0.0.1/repo file:///srv/git/repo.git /srv/git/repo ../repo ext::sh; do
    i=$((i + 1))
    printf %s "$u" >"$tmp/url$i"
    add git_url "$tmp/url$i"
done

for d in fuzz/corpus/*/; do
    echo "$d: $(find "$d" -type f | wc -l) file(s)"
done
