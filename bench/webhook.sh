#!/usr/bin/env bash
# bench/webhook.sh [N] — S3 webhook notifications into `syncer run`, the load
# client (bench/webhookload) in a process of its own, everything on loopback.
#
# Starts gofakes3 (bench/s3server, its own process) with N objects (default 0),
# then `syncer run` with that bucket as an S3 source with a webhook, an
# embedded NATS (file store) and a fresh catalog, and bench/webhookload, which
# POSTs S3 ObjectCreated notifications at RATE/s for new keys and reads the
# source's stream (see bench/webhookload for what it measures: from each
# notification's due time at RATE to the event's store time in JetStream, and
# to the webhook's 200).
#
# With N > 0 the start-up scan is a first import of N objects: webhookload
# follows it on the stream, reports when its last event was stored after
# syncer's start (the import under `syncer run` to the last event
# acknowledged), splits the notifications into those sent during the import
# and after it, and goes on AFTER (default 10s) once it is done. The bare
# listing loop (bench/listloop) runs just before and just after, for the
# ratio.
#
# Environment: RATE (default 200), DURATION (default 10s: how long to send at
# least), AFTER (default 10s), WINDOW (events.coalesceWindow, default 0: every
# commit is published at once),
# SENDERS (default 256), LISTCONC (the source's listConcurrency, default unset:
# automatic), INDEX (set: the source keeps the asset API's indexes, which the
# import builds after its listing, while the notifications counted "after"
# go on), WORK (scratch dir, default a new temp dir, removed at
# the end unless KEEP=1; the logs and report.txt stay).
# Needs: go, python3 (to pick free ports).
set -euo pipefail

N=${1:-0}
RATE=${RATE:-200}
DURATION=${DURATION:-10s}
AFTER=${AFTER:-10s}
WINDOW=${WINDOW:-0s}
SENDERS=${SENDERS:-256}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/syncer-webhook.XXXXXX")}
BIN=$WORK/bin
mkdir -p "$BIN"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

PIDS=()
cleanup() {
	for p in ${SERVER:-} "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [[ ${KEEP:-0} != 1 ]]; then
		rm -rf "$WORK/data" "$WORK/nats" "$BIN"
	fi
}
trap cleanup EXIT

log "building into $BIN"
(cd "$ROOT" && go build -o "$BIN/syncer" ./cmd/syncer &&
	go build -o "$BIN/" ./bench/s3server ./bench/listloop ./bench/webhookload)

start_s3server "$N"
log "$READY"

listing() { # listing: the bare listing loop's wall time in seconds
	local t0 t1
	t0=$(date +%s%N)
	"$BIN/listloop" -endpoint "$URL" -bucket bench >"$WORK/listloop.out" 2>&1
	t1=$(date +%s%N)
	echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}
BASE1= BASE2=
if ((N > 0)); then
	log "bare listing (before)"
	BASE1=$(listing)
fi

HTTP_PORT=$(free_port)
NATS_PORT=$(free_port)
TOKEN=bench-$RANDOM$RANDOM
INDEXED=
[[ -z ${INDEX:-} ]] || INDEXED="    assets: {index: true}"
cat >"$WORK/syncer.yaml" <<YAML
nats: {url: embedded, listen: "127.0.0.1:$NATS_PORT", storeDir: "$WORK/nats"}
catalog: {path: "$WORK/data"}
events: {coalesceWindow: $WINDOW}
http: {listen: "127.0.0.1:$HTTP_PORT"}
log: {level: warn}
sources:
  - id: bench
    provider: s3
    bucket: bench
    schedule: "@every 24h"
    s3: {endpoint: "$URL", region: us-east-1, pathStyle: true}
    notifications: {webhook: {token: "$TOKEN"}}
${LISTCONC:+    listConcurrency: $LISTCONC}
$INDEXED
YAML

LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date -u +%FT%TZ)
log "syncer run, webhookload at $RATE/s (window $WINDOW)"
T0=$(date +%s%N)
"$BIN/syncer" run --config "$WORK/syncer.yaml" >"$WORK/syncer.log" 2>&1 &
SYNCER=$!
PIDS+=("$SYNCER")
"$BIN/webhookload" -webhook "http://127.0.0.1:$HTTP_PORT/webhooks/s3/bench" -token "$TOKEN" \
	-nats "nats://127.0.0.1:$NATS_PORT" -subject syncer.changed.bench -bucket bench \
	-rate "$RATE" -senders "$SENDERS" -duration "$DURATION" -after "$AFTER" -import "$N" -t0 "$T0" \
	>"$WORK/load.out" 2>"$WORK/load.err" &
LOADER=$!
PIDS+=("$LOADER")
# A syncer that exits (a bad config, a crash) ends the run, instead of
# leaving the loader waiting for its events.
while kill -0 "$LOADER" 2>/dev/null; do
	if ! kill -0 "$SYNCER" 2>/dev/null; then
		kill "$LOADER" 2>/dev/null || true
		cat "$WORK/syncer.log" >&2
		echo "syncer exited during the run" >&2
		exit 1
	fi
	sleep 0.2
done
wait "$LOADER" || {
	cat "$WORK/load.err" "$WORK/load.out" >&2
	exit 1
}
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
kill "$SYNCER" && wait "$SYNCER" 2>/dev/null || true
if ((N > 0)); then
	log "bare listing (after)"
	BASE2=$(listing)
fi

{
	echo "bench/webhook.sh $N: $START, syncer $(cd "$ROOT" && git rev-parse --short HEAD), $(nproc) cores," \
		"load average $LOAD at the start, $LOAD_END at the end; RATE=$RATE WINDOW=$WINDOW SENDERS=$SENDERS"
	echo "$READY"
	cat "$WORK/load.out"
	if ((N > 0)); then
		last=$(sed -n "s/.*, last \([0-9.]*\) s after syncer's start/\1/p" "$WORK/load.out")
		echo "bare listing: $BASE1 s before, $BASE2 s after"
		if [[ -n $last ]]; then
			echo "import to its last event stored / bare listing (mean): $(echo "scale=2; $last * 2 / ($BASE1 + $BASE2)" | bc)×"
		fi
	fi
} | tee "$WORK/report.txt"
