# syntax=docker/dockerfile:1
# The dependencies are compiled in a layer of their own, which only a change
# to Cargo.toml, Cargo.lock or the set of source files rebuilds: the build
# stage compiles them against this skeleton of the tree, every `.rs` file an
# empty `main` (cargo refuses a manifest whose targets are missing). BuildKit
# keys a COPY by content, so a skeleton equal to the last one is a cache hit.
# This is what cargo-chef does, in two commands and without a tool to install.
FROM rust:1.95-bookworm AS skeleton
WORKDIR /src
COPY . .
RUN find . -name '*.rs' -exec sh -c 'for f; do echo "fn main() { }" > "$f"; done' sh {} + \
 && find . -type f ! -name '*.rs' ! -name Cargo.toml ! -name Cargo.lock -delete

# Build: `cargo build --release --locked`, the dependencies first
# (tests/image.rs checks the skeleton against Cargo.toml).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY --from=skeleton /src ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked \
 && rm -rf target/release/.fingerprint/credgate-*

# Then credgate itself; its fingerprints are gone, so the real sources are
# compiled whatever their timestamps.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked \
 && cp target/release/credgate /credgate

# Run: distroless "cc" holds what the binary links (glibc, libgcc_s, libm;
# the same Debian 12 as the build image) and CA roots for an https upstream,
# and no shell or package manager. Its `nonroot` user is uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /credgate /usr/local/bin/credgate
USER 65532:65532
# 8443: the TLS proxy listener; 9090: the admin listener (/metrics, /healthz,
# /readyz). In a container set `admin_listen = "0.0.0.0:9090"` so that it can
# be scraped from outside.
EXPOSE 8443 9090
# Liveness through the admin listener (the image has no curl): exit 0 when
# /healthz answers 200 within 2 s. With admin_listen on another port, add
# `--url http://127.0.0.1:PORT/healthz`.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/credgate", "healthcheck"]
# Paths (mount them read-only; uid 65532 must be able to read them):
#   /etc/credgate/credgate.toml   the configuration (and the certificate,
#                                 key and admin token it names)
#   /var/lib/credgate/*.cgf       the leaked-credential filters it names
#                                 (replaced files are reloaded)
ENTRYPOINT ["/usr/local/bin/credgate"]
CMD ["serve", "--config", "/etc/credgate/credgate.toml"]
