# syntax=docker/dockerfile:1
# Build: the same release build CI checks.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked \
 && cp target/release/credgate /credgate

# Run: a small image with CA roots (for an https upstream) and no shell tools
# beyond Debian's base, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin credgate
COPY --from=build /credgate /usr/local/bin/credgate
USER credgate
# 8443: the TLS proxy listener; 9090: the admin listener (/metrics, /healthz,
# /readyz). In a container set `admin_listen = "0.0.0.0:9090"` so that it can
# be scraped from outside.
EXPOSE 8443 9090
# Liveness through the admin listener (the image has no curl): exit 0 when
# /healthz answers 200 within 2 s. With admin_listen on another port, add
# `--url http://127.0.0.1:PORT/healthz`.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/credgate", "healthcheck"]
# Mount the configuration (and the certificate it names) at /etc/credgate.
ENTRYPOINT ["/usr/local/bin/credgate"]
CMD ["serve", "--config", "/etc/credgate/credgate.toml"]
