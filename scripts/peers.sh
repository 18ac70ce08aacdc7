#!/usr/bin/env bash
# Builds the peer tools gitseal is tested and benchmarked against, from the Go module proxy,
# and caches them in ${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/peers:
#
#   sops      github.com/getsops/sops/v3/cmd/sops        (go install MODULE@VERSION)
#   kubeseal  github.com/bitnami-labs/sealed-secrets     (`go install` refuses this module
#             path, so: go mod download, copy the module folder somewhere writable, go build
#             ./cmd/kubeseal inside it)
#   sealed-secrets-controller  the same module's ./cmd/controller, built the same way (only
#             scripts/bench-sealed.sh uses it, so it is built only when named)
#   helm      helm.sh/helm/v3/cmd/helm                   (go install; the chart tests:
#             `helm lint`, `helm template`)
#   kustomize sigs.k8s.io/kustomize/kustomize/v5         (go install; the binary the agent's
#             container image ships, for the image's runtime-contract test)
#
#   scripts/peers.sh              # sops, kubeseal, helm and kustomize; prints the peers folder (the only line on stdout)
#   scripts/peers.sh sops         # only the ones named
#
# Each binary has a stamp (version + this script's build flags); a binary whose stamp matches
# is not rebuilt, so a warm run costs nothing. Concurrent runs (several test binaries at once)
# serialise on a lock file. Builds go to a temporary name first, so an interrupted build never
# leaves a binary that looks finished. Progress goes to stderr.
set -euo pipefail

SOPS_VERSION=v3.13.3
KUBESEAL_VERSION=v0.40.0
HELM_VERSION=v3.22.0
# Also in deploy/image/Dockerfile (KUSTOMIZE_VERSION): the image ships this kustomize.
KUSTOMIZE_VERSION=v5.8.2

out="${GITSEAL_CACHE_DIR:-$HOME/.cache/gitseal}/peers"
mkdir -p "$out"

# Lean builds: no cgo, no debug info, reproducible paths; never touch a go.mod in a checkout.
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local
ldflags="-s -w"
flags_stamp="trimpath $ldflags cgo0"

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(sops kubeseal helm kustomize)

stamp_for() {
    case "$1" in
        sops) echo "sops $SOPS_VERSION $flags_stamp" ;;
        kubeseal) echo "kubeseal $KUBESEAL_VERSION $flags_stamp" ;;
        sealed-secrets-controller) echo "sealed-secrets-controller $KUBESEAL_VERSION $flags_stamp" ;;
        helm) echo "helm $HELM_VERSION $flags_stamp k8s1.37" ;;
        kustomize) echo "kustomize $KUSTOMIZE_VERSION $flags_stamp" ;;
        *) echo "peers.sh: unknown peer '$1' (sops, kubeseal, sealed-secrets-controller, helm, kustomize)" >&2; exit 2 ;;
    esac
}

fresh() { # the binary exists and was built by this script at the pinned version
    [[ -x "$out/$1" && -f "$out/$1.stamp" && "$(<"$out/$1.stamp")" == "$(stamp_for "$1")" ]]
}

all_fresh() {
    local t
    for t in "${want[@]}"; do fresh "$t" || return 1; done
}

if all_fresh; then
    echo "$out"
    exit 0
fi

command -v go >/dev/null 2>&1 || { echo "peers.sh: the Go toolchain is required to build ${want[*]}" >&2; exit 1; }
command -v flock >/dev/null 2>&1 || { echo "peers.sh: flock (util-linux) is required" >&2; exit 1; }

exec 9>"$out/.lock"
flock 9

build_sops() {
    local tmp
    tmp="$(mktemp -d "$out/.sops-build.XXXXXX")"
    GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION"
    mv -f "$tmp/sops" "$out/sops"
    rm -rf "$tmp"
}

# go_install NAME MODULE/PKG@VERSION [LDFLAGS]: `go install` into a temporary folder, then
# into $out.
go_install() {
    local tmp
    tmp="$(mktemp -d "$out/.$1-build.XXXXXX")"
    GOBIN="$tmp" go install -trimpath -ldflags "$ldflags ${3:-}" "$2"
    mv -f "$tmp/$1" "$out/$1"
    rm -rf "$tmp"
}

# As helm's Makefile stamps a release: its version, and the Kubernetes version its client
# libraries are (the default of `helm template` and `helm lint`; v3.22 uses k8s.io v0.37).
HELM_LDFLAGS="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    HELM_LDFLAGS+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=37"
done
build_helm() { go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$HELM_LDFLAGS"; }
build_kustomize() { go_install kustomize "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"; }

# build_sealed_secrets CMD OUT: `go build ./cmd/CMD` of sealed-secrets into $out/OUT.
build_sealed_secrets() {
    local dir tmp
    dir="$(go mod download -json "github.com/bitnami-labs/sealed-secrets@$KUBESEAL_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [ -d "$dir" ] || { echo "peers.sh: go mod download gave no module folder for sealed-secrets@$KUBESEAL_VERSION" >&2; exit 1; }
    tmp="$(mktemp -d "$out/.$2-build.XXXXXX")"
    # The module cache is read-only; go build wants to own its module folder.
    cp -r "$dir/." "$tmp/src"
    chmod -R u+w "$tmp/src"
    (cd "$tmp/src" && go build -trimpath -ldflags "$ldflags -X main.VERSION=$KUBESEAL_VERSION" -o "$tmp/$2" "./cmd/$1")
    mv -f "$tmp/$2" "$out/$2"
    rm -rf "$tmp"
}

build_kubeseal() { build_sealed_secrets kubeseal kubeseal; }
build_sealed-secrets-controller() { build_sealed_secrets controller sealed-secrets-controller; }

for t in "${want[@]}"; do
    if fresh "$t"; then continue; fi # another run finished it while we waited for the lock
    echo "peers.sh: building $t $(stamp_for "$t" | cut -d' ' -f2) ..." >&2
    start=$SECONDS
    rm -f "$out/$t.stamp"
    "build_$t"
    stamp_for "$t" >"$out/$t.stamp"
    echo "peers.sh: built $t in $((SECONDS - start))s" >&2
done

echo "$out"
