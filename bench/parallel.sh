#!/usr/bin/env bash
# bench/parallel.sh [N] — parallel key-range listing against a store with
# real S3's latency.
#
# Serves N objects (default 200000) from gofakes3 (bench/s3server, its own
# process) answering every list request DELAY late (default 50ms, what real
# S3 takes for a page), then measures, each a separate process under
# bench/measure, interleaved over ROUNDS (default 2):
#   base  bench/listloop: the bare sequential ListObjectsV2 paginator
#   par   `syncer scan --publish=false` into a fresh catalog, listConcurrency
#         CONC (default: unset, the automatic 8)
#   parre the same scan again (a rescan: nothing changed, no catalog writes)
#   seq   the same scan with listConcurrency: 1 (the sequential listing)
#   seqre its rescan
# (SEQ=0 skips the seq runs, RESCAN=0 the rescans, BASE=after measures the
# baseline once, after the scans, instead of around each round) and reports wall times, ratios to the mean of the baselines around each
# scan, peak anonymous RSS, CPU seconds (user+sys) and list requests (the
# server's count) per run.
#
# The ranges are split with StartAfter (providers.WalkParallel): gofakes3's
# s3mem backend walks from the bucket's start for a prefix listing without a
# marker, so prefix-split ranges would look slow against it; StartAfter-split
# ones do not, as on real S3.
set -euo pipefail

N=${1:-200000}
ROUNDS=${ROUNDS:-2}
DELAY=${DELAY:-50ms}
CONC=${CONC:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/syncer-parallel.XXXXXX")}
BIN=$WORK/bin
RUNS=$WORK/runs.txt
mkdir -p "$BIN"
: >"$RUNS"
: >"$WORK/lists.txt"
: >"$WORK/catalog.txt"

SERVER=
cleanup() {
	if [[ -n $SERVER ]] && kill -0 "$SERVER" 2>/dev/null; then
		kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
	fi
	rm -rf "$WORK/cat"* "$BIN"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log "building into $BIN"
(cd "$ROOT" && go build -o "$BIN/syncer" ./cmd/syncer &&
	go build -o "$BIN/" ./bench/s3server ./bench/listloop ./bench/measure)

log "filling gofakes3 with $N objects, lists delayed $DELAY"
start_s3server "$N" -listdelay "$DELAY"

config() { # config NAME CONCURRENCY
	cat >"$WORK/$1.yaml" <<EOC
nats: {url: embedded}
catalog: {path: "$WORK/cat-$1"}
sources:
  - id: bench
    provider: s3
    bucket: bench
    s3: {endpoint: "$URL", region: us-east-1, pathStyle: true}
${2:+    listConcurrency: $2}
EOC
}
measure() {
	local label=$1 before
	shift
	log "run $label"
	before=$(curl -fsS "$URL/_lists")
	"$BIN/measure" -label "$label" -o "$RUNS" -- "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" ||
		{ cat "$WORK/$label.err" >&2; exit 1; }
	echo "label=$label lists=$(($(curl -fsS "$URL/_lists") - before))" >>"$WORK/lists.txt"
}
for r in $(seq 1 "$ROUNDS"); do
	[[ ${BASE:-around} == after ]] || measure "base$r" "$BIN/listloop" -endpoint "$URL" -bucket bench
	config "par$r" "$CONC"
	measure "par$r" "$BIN/syncer" scan --config "$WORK/par$r.yaml" --source bench --publish=false
	du -k "$WORK/cat-par$r" | tail -1 | awk -v l="par$r" '{ print "label=" l " catalog_kb=" $1 }' >>"$WORK/catalog.txt"
	[[ ${RESCAN:-1} == 0 ]] || measure "parre$r" "$BIN/syncer" scan --config "$WORK/par$r.yaml" --source bench --publish=false
	rm -rf "$WORK/cat-par$r"
	if [[ ${SEQ:-1} == 1 ]]; then
		config "seq$r" 1
		measure "seq$r" "$BIN/syncer" scan --config "$WORK/seq$r.yaml" --source bench --publish=false
		measure "seqre$r" "$BIN/syncer" scan --config "$WORK/seq$r.yaml" --source bench --publish=false
		rm -rf "$WORK/cat-seq$r"
	fi
done
measure "base$((ROUNDS + 1))" "$BIN/listloop" -endpoint "$URL" -bucket bench

echo "## parallel listing: $N objects, list latency $DELAY, listConcurrency ${CONC:-automatic}"
echo
echo "$(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
awk -v rounds="$ROUNDS" '
{ for (i = 1; i <= NF; i++) { split($i, p, "="); f[p[1]] = p[2] }
  l = f["label"]; wall[l] = f["wall_s"]; anon[l] = f["peak_anon_kb"] / 1024 }
END {
	print "| round | base s | first par / seq s | rescan par / seq s | first par / base | rescan par / base | rescan seq / base | anon MB par first / rescan / seq first |"
	print "|---|---:|---:|---:|---:|---:|---:|---:|"
	for (r = 1; r <= rounds; r++) {
		b = (wall["base" r] + wall["base" (r+1)]) / 2
		if (!(("base" r) in wall)) b = wall["base" (r+1)]
		if (!(("base" (r+1)) in wall)) b = wall["base" r]
		printf "| %d | %.2f | %.2f / %.2f | %.2f / %.2f | %.3f× | %.3f× | %.2f× | %.1f / %.1f / %.1f |\n", r, b, wall["par" r], wall["seq" r], wall["parre" r], wall["seqre" r], wall["par" r] / b, wall["parre" r] / b, wall["seqre" r] / b, anon["par" r], anon["parre" r], anon["seq" r]
	}
}' "$RUNS"
echo
echo "| run | wall s | CPU s (user+sys) | peak anon MB | list requests | catalog MiB after |"
echo "|---|---:|---:|---:|---:|---:|"
awk '
FNR == 1 { file++ }
{ delete f; for (i = 1; i <= NF; i++) { split($i, p, "="); f[p[1]] = p[2] } }
file == 1 { lists[f["label"]] = f["lists"]; next }
file == 2 { cat[f["label"]] = sprintf("%.1f", f["catalog_kb"] / 1024); next }
{ printf "| %s | %.2f | %.2f | %.1f | %s | %s |\n", f["label"], f["wall_s"], f["user_s"] + f["sys_s"], f["peak_anon_kb"] / 1024, lists[f["label"]], cat[f["label"]] }
' "$WORK/lists.txt" "$WORK/catalog.txt" "$RUNS"
