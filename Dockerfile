# syntax=docker/dockerfile:1
#
# gitseal-agent's container image. From the repository root:
#
#   docker build -t ghcr.io/gitseal/gitseal-agent:0.1.0 .
#
# The runtime stage holds exactly what the agent runs, as listed in
# deploy/image/runtime-binaries: git, the ssh client, CA certificates, kustomize and the agent.
# Its PATH is one folder with a link to each of those programs and nothing else; the
# image-contract test (controller/tests/image_runtime_e2e.rs) runs the agent's end-to-end flow
# with a PATH made by the same script from the same list. It runs as 65532:65532 with a
# read-only root filesystem: git clones go to the cache emptyDir (--cache-dir), kustomize's
# scratch folders to /tmp (an emptyDir in deploy/ and the chart).

# Toolchains of the build stages; the runtime stage is the same Debian release, so the agent
# links against the glibc it runs with.
ARG RUST_IMAGE=rust:1.95-slim-trixie
ARG GO_IMAGE=golang:1.26-trixie
ARG RUNTIME_IMAGE=debian:trixie-slim

# --- the agent: a stripped release build (Cargo.toml's release profile strips symbols) ---
FROM ${RUST_IMAGE} AS agent
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gitseal-agent \
    && install -D -m 0755 target/release/gitseal-agent /out/gitseal-agent

# --- kustomize, built from Go modules at the version the tests use (scripts/peers.sh) ---
FROM ${GO_IMAGE} AS kustomize
ARG KUSTOMIZE_VERSION=v5.8.2
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"

# --- runtime ---
FROM ${RUNTIME_IMAGE}
COPY deploy/image/runtime-binaries deploy/image/link-runtime-binaries /usr/local/share/gitseal/
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        $(/usr/local/share/gitseal/link-runtime-binaries --packages) \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*
COPY --from=kustomize /out/kustomize /usr/local/bin/kustomize
COPY --from=agent /out/gitseal-agent /usr/local/bin/gitseal-agent
# OpenSSH refuses to run for a uid without a passwd entry ("No user exists for uid"), so the
# agent's user exists; its home is never used (git runs with a private HOME in the cache).
RUN groupadd --gid 65532 gitseal \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin gitseal \
    && /usr/local/share/gitseal/link-runtime-binaries /usr/local/gitseal/bin
ENV PATH=/usr/local/gitseal/bin
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gitseal-agent"]
CMD ["run", "--log-format", "json", "--cache-dir", "/cache/git"]
