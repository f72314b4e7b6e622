# syntax=docker/dockerfile:1
# Build: `cargo build --release --locked`, twice (tests/image.rs keeps the
# two and the stand-in targets in step with Cargo.toml).
FROM rust:1.95-bookworm AS build
WORKDIR /src

# The dependencies first, in a layer of their own that only a change to
# Cargo.toml or Cargo.lock rebuilds: the real manifest over empty targets
# (cargo refuses a manifest whose declared targets are missing). Written out
# rather than cargo-chef: one tool fewer in the build, and the manifest has
# only these targets.
COPY Cargo.toml Cargo.lock ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    mkdir -p src benches tests \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/filter.rs \
 && echo 'fn main() {}' > benches/fingerprint.rs \
 && touch tests/tests.rs \
 && cargo build --release --locked \
 && rm -rf src benches tests target/release/.fingerprint/credgate-*

# Then credgate itself; its fingerprints are gone, so the copied sources are
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
