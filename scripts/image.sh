#!/usr/bin/env bash
# Builds syncer's container image without a Docker daemon and without
# network, as an OCI image layout in DIR (index.json, blobs/sha256/...):
#
#   scripts/image.sh DIR
#
# The image is the same as the Dockerfile's: a static, stripped binary at
# /syncer (version and revision from the Go build info), Debian's CA
# certificates, /etc/passwd and /etc/group with nonroot 65532, user
# 65532:65532, no shell. Same commit, same bytes. Load it with
#   skopeo copy oci:DIR:syncer:TAG docker-daemon:syncer:TAG
#   crane push DIR REGISTRY/syncer:TAG
#   tar -C DIR -cf syncer.tar . && docker load -i syncer.tar   (Docker >= 25)
# Environment: GOARCH (default: the host's), CA_CERTS (default Debian's
# bundle /etc/ssl/certs/ca-certificates.crt).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: scripts/image.sh DIR" >&2
  exit 2
fi
out=$1
cd "$(dirname "$0")/.."
case $out in /*) ;; *) out=$OLDPWD/$out ;; esac
ca=${CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
if [ ! -r "$ca" ]; then
  echo "image.sh: no CA certificate bundle at $ca: install Debian's ca-certificates (apt-get install -y ca-certificates) or set CA_CERTS" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# -trimpath and -s -w: no build paths, no symbol table, no DWARF. The module
# version and vcs.revision stay in the build info (syncer version prints it).
# -buildvcs=auto overrides a GOFLAGS=-buildvcs=false; Go stamps only from a
# checkout whose .git is a directory (not a git worktree), so when the build
# info has no version the labels and tag take it (and the revision and
# commit time) from git.
CGO_ENABLED=0 GOOS=linux GOARCH=${GOARCH:-$(go env GOARCH)} \
  go build -buildvcs=auto -trimpath -ldflags "-s -w" -o "$work/syncer" ./cmd/syncer
go build -o "$work/ociimage" ./internal/ociimage/cmd/ociimage
vcs=()
if git rev-parse --git-dir >/dev/null 2>&1; then
  vcs=(--revision "$(git rev-parse HEAD)" --created "$(git log -1 --format=%cI)")
  v=$(git describe --tags --match 'v*' --always --dirty 2>/dev/null || true)
  [ -n "$v" ] && vcs+=(--version "$v")
fi
"$work/ociimage" --binary "$work/syncer" --ca-certs "$ca" --out "$out" "${vcs[@]}"
