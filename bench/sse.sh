#!/usr/bin/env bash
# bench/sse.sh [N] — fan-out of one syncer to N concurrent server-sent-event
# streams (default 10000), the load client (bench/sseload) in its own process,
# both on loopback.
#
# Starts `syncer run` with a local source and an embedded NATS, opens N streams
# on GET /sources/bench/events, reads syncer's Go memory (heap in use + goroutine
# stacks, and RSS) from /metrics before and after (memory per idle stream), then
# EVENTS times writes a file into the source and triggers a scan through the
# admin endpoint, and reports when that event reached every stream: from the
# event's cut (its CloudEvent time, set just before the publish) and from the
# scan request.
#
# Environment: EVENTS (default 5), WORK (scratch dir, default a new temp dir).
# Needs: go, python3 (to pick free ports), curl.
set -euo pipefail

N=${1:-10000}
EVENTS=${EVENTS:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/syncer-sse.XXXXXX")}
mkdir -p "$WORK/bin" "$WORK/assets"

# Each stream is a descriptor on both sides (in two processes).
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((N + 1000)) ]; then
	echo "bench/sse.sh: the file descriptor limit $(ulimit -n) is too low for $N streams" >&2
	exit 1
fi

(cd "$ROOT" && go build -o "$WORK/bin/syncer" ./cmd/syncer && go build -o "$WORK/bin/sseload" ./bench/sseload)

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
HTTP_PORT=$(free_port)
NATS_PORT=$(free_port)
ADMIN=bench-admin-$RANDOM$RANDOM
cat >"$WORK/syncer.yaml" <<YAML
nats: {url: embedded, listen: "127.0.0.1:$NATS_PORT", storeDir: "$WORK/nats"}
catalog: {path: "$WORK/data"}
http:
  listen: "127.0.0.1:$HTTP_PORT"
  maxConns: $((N + 1024))
  auth: {adminTokens: ["$ADMIN"]}
log: {level: warn}
sources:
  - {id: bench, provider: local, path: "$WORK/assets", settle: 0s, schedule: "@every 1h"}
YAML

"$WORK/bin/syncer" run --config "$WORK/syncer.yaml" >"$WORK/syncer.log" 2>&1 &
SYNCER=$!
trap 'kill "$SYNCER" 2>/dev/null || true; wait "$SYNCER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null && break
	sleep 0.1
done
echo "syncer $(cd "$ROOT" && git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), N=$N"
"$WORK/bin/sseload" -url "http://127.0.0.1:$HTTP_PORT" -source bench -dir "$WORK/assets" -admin "$ADMIN" \
	-n "$N" -events "$EVENTS"
