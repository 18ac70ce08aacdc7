#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and the gitseal-controlplane launcher into
#   ${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/controlplane/<k8s-version>-etcd<etcd-version>/
# and prints that directory (the only line on stdout). Progress goes to stderr.
#
# Idempotent: every binary has a stamp (a hash of what it is built from); a binary whose stamp
# matches is not rebuilt, so a warm run only hashes a few files. Concurrent runs (several test
# binaries at once) serialise on a lock file in the cache directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Versions come from the go.mod files, so they cannot drift from what is built.
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }
                    $1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ { print $2; exit }
                     $1 == "require" && $2 == "go.etcd.io/etcd/server/v3" { print $3; exit }' "$here/etcd/go.mod")"
if [[ -z "$k8s_version" || -z "$etcd_version" ]]; then
    echo "build.sh: cannot read the k8s.io/kubernetes or etcd version from $here/go.mod, $here/etcd/go.mod" >&2
    exit 1
fi

out="${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/controlplane/${k8s_version}-etcd${etcd_version#v}"
mkdir -p "$out"

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# What each binary is built from (plus this script, whose flags shape the result).
k8s_stamp="$(stamp_of "$here/go.mod" "$here/go.sum" "$here/build.sh")"
etcd_stamp="$(stamp_of "$here/etcd/go.mod" "$here/etcd/go.sum" "$here/build.sh")"
launcher_stamp="$(stamp_of "$here/go.mod" "$here/build.sh" "$here"/launcher/*.go)"

fresh() { # fresh NAME STAMP: the binary exists and was built from the same inputs
    [[ -x "$out/$1" && -f "$out/$1.stamp" && "$(<"$out/$1.stamp")" == "$2" ]]
}

all_fresh() {
    fresh kube-apiserver "$k8s_stamp" && fresh kube-controller-manager "$k8s_stamp" &&
        fresh etcd "$etcd_stamp" && fresh gitseal-controlplane "$launcher_stamp"
}

if all_fresh; then
    echo "$out"
    exit 0
fi

exec 9>"$out/.lock"
flock 9
if all_fresh; then # another build finished while we waited for the lock
    echo "$out"
    exit 0
fi

# -mod=readonly: a build never rewrites go.mod or go.sum in the checkout.
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local

# build NAME STAMP DIR PACKAGE LDFLAGS: go build into a temporary name, then rename, so an
# interrupted build never leaves a binary that looks finished.
build() {
    local name="$1" stamp="$2" dir="$3" pkg="$4" ldflags="$5"
    if fresh "$name" "$stamp"; then
        return
    fi
    echo "build.sh: building $name ($pkg) ..." >&2
    local start=$SECONDS
    (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out/.$name.tmp" "$pkg")
    mv -f "$out/.$name.tmp" "$out/$name"
    echo "$stamp" >"$out/$name.stamp"
    echo "build.sh: built $name in $((SECONDS - start))s" >&2
}

# /version must report the real release, as hack/lib/version.sh stamps it.
minor="${k8s_version#v*.}"
minor="${minor%%.*}"
major="${k8s_version#v}"
major="${major%%.*}"
build_date="$(cd "$here" && go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    k8s_ldflags+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}"
done

build gitseal-controlplane "$launcher_stamp" "$here" ./launcher "-s -w"
build etcd "$etcd_stamp" "$here/etcd" go.etcd.io/etcd/server/v3 "-s -w"
build kube-apiserver "$k8s_stamp" "$here" k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kube-controller-manager "$k8s_stamp" "$here" k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"

echo "$out"
