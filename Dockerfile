# syncer's image for teams with Docker. scripts/image.sh builds the same image
# without a daemon or network (an OCI layout); see docs/deploy.md.
#
#   docker build -t syncer:dev .
#   docker build --build-arg VERSION=v1.2.3 -t syncer:v1.2.3 .
#
# Final stage: distroless static nonroot (CA certificates, /etc/passwd with
# nonroot 65532, no shell). The binary is static (CGO_ENABLED=0), without
# build paths (-trimpath) and stripped (-s -w).
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
# -buildvcs=auto stamps the module version and revision when .git is in the
# build context; syncer version prints them.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -buildvcs=auto -trimpath -ldflags "-s -w" -o /out/syncer ./cmd/syncer \
 && mkdir -p /out/var/lib/syncer /out/etc/syncer

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="syncer" \
      org.opencontainers.image.description="Reconciles cloud buckets against a catalog and publishes changes to NATS JetStream" \
      org.opencontainers.image.source="https://github.com/imgly/syncer" \
      org.opencontainers.image.url="https://github.com/imgly/syncer" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="img.ly"
COPY --from=build /out/syncer /syncer
COPY --from=build --chown=65532:65532 /out/var/lib/syncer /var/lib/syncer
COPY --from=build /out/etc/syncer /etc/syncer
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/syncer"]
CMD ["run", "--config", "/etc/syncer/syncer.yaml"]
