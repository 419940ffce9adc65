# syntax=docker/dockerfile:1
# chatbridge in a container: built from this checkout, run as an unprivileged user, its state in a volume.
#
#   docker build -t chatbridge .
#   docker run -d --name chatbridge \
#     -v /etc/chatbridge/config.toml:/etc/chatbridge/config.toml:ro \
#     -v chatbridge-state:/var/lib/chatbridge \
#     chatbridge
#
# The configuration must be readable by the image's user (65532): install it 0644, with no secret in it.
# Secrets: `env:NAME` with `docker run -e NAME=…` (or `--env-file`, a file only root reads), or
# `file:/run/secrets/NAME` with a mounted file that user can read. `docker kill -s HUP chatbridge` reloads the configuration; `docker stop` drains the queues first (give it
# `--time` beyond general.shutdown_timeout). CI lints this file with hadolint (.ci/container.sh).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# --locked: the versions Cargo.lock names, nothing resolved anew. The release profile strips the DWARF.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/chatbridge /usr/local/bin/chatbridge \
    && mkdir -p /state && chown 65532:65532 /state && chmod 0700 /state

# glibc, libgcc and the CA certificates the platforms' TLS is checked against; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/chatbridge /usr/local/bin/chatbridge
COPY --from=build --chown=65532:65532 /state /var/lib/chatbridge
ENV CHATBRIDGE_CONFIG=/etc/chatbridge/config.toml \
    STATE_DIRECTORY=/var/lib/chatbridge
VOLUME ["/var/lib/chatbridge"]
# The image's `nonroot` user (65532); the state directory is its own.
USER 65532:65532
# Serve /health and /metrics with general.http_listen = "0.0.0.0:9780" to publish them (with general.admin_token set:
# beyond loopback, the status page and the admin API need it, and `check` refuses the file without it).
EXPOSE 9780
ENTRYPOINT ["/usr/local/bin/chatbridge"]
CMD ["run"]
