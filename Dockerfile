# The Mandate container image: the static binary, CA certificates and a
# non-root user, and nothing else (no shell, no package manager).
#
# It needs no base image and runs no command: scripts/build-image builds
# the binary with Go on the host (CGO_ENABLED=0; the SQLite driver is pure
# Go), gathers it with the host's CA bundle and the user's passwd and
# group entries in a build context, and runs `podman build` (or docker)
# on this file. See docs/deploy.md, "Container image".
FROM scratch

ARG VERSION=unknown
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="mandate" \
      org.opencontainers.image.description="On-behalf-of authorization for AI agents (RFC 8693 token exchange)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"

COPY etc/passwd etc/group /etc/
COPY etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY mandate /mandate
# The data directory (SQLite database, signing keys): /var/lib is root's,
# /var/lib/mandate the user's own (mode 0700), and a volume so that it
# outlives the container.
COPY var/ /var/
COPY --chown=65532:65532 data/ /var/lib/

USER 65532:65532
WORKDIR /var/lib/mandate
VOLUME ["/var/lib/mandate"]
EXPOSE 8080
ENTRYPOINT ["/mandate"]
CMD ["serve", "--config", "/etc/mandate/mandate.yaml", "--data-dir", "/var/lib/mandate"]
