#!/usr/bin/env bash
# bench/scan.sh [N] — how much `syncer scan` costs over a bare S3 listing.
#
# Fills an in-memory gofakes3 bucket (bench/s3server, its own process) with N
# objects (default 1000000; CI may use 50000), then measures, each run as a
# separate process under bench/measure:
#   base   bench/listloop: a bare aws-sdk-go-v2 ListObjectsV2 loop (the baseline)
#   first  `syncer scan --publish=false` into a fresh catalog
#   rescan `syncer scan --publish=false` again, nothing changed in the bucket
#   import `syncer scan` (publishing, as a user runs it) into another fresh
#          catalog, with an embedded NATS: the listing, the commits, the
#          events and dropping the published outbox
#   open   `syncer catalog stats` on the filled catalog: the fixed cost of
#          opening it, which every scan pays
# interleaved as base, first, rescan, import, base, ..., base, so that
# every scan has a baseline just before and just after it. Ratios use the mean
# of those two baselines, per round, and the median over rounds.
#
# For the rescan it also checks that the catalog was not written: objects,
# lastSeq and unpublished counts unchanged, the data pages byte-identical,
# and the bbolt transaction id unchanged (opening an existing catalog writes
# nothing).
#
# With --catalog-url URL (a PostgreSQL server whose user may create
# databases, e.g. postgres://postgres@127.0.0.1:5432/postgres), the catalogs
# are PostgreSQL databases created on that server (one per run, dropped at
# the end) instead of bbolt files, and the rescan check counts the rows the
# rescan inserted, updated or deleted (pg_stat_user_tables) instead of
# bbolt's pages. psql must be on PATH or in /usr/lib/postgresql/*/bin.
#
# Environment: INDEX=1 gives the source the asset API's indexes (`assets:
# {index: true}`: the sort-order indexes and the search blocks) so that their
# cost shows against a run without; LISTCONC (the source's listConcurrency,
# default unset: automatic); ROUNDS (default 2); WORK (scratch dir, default a
# new temp dir;
# its catalogs and binaries are removed at the end unless KEEP=1, the report
# and the runs' logs stay); OUT (report file, default $WORK/report.md, also
# printed at the end).
#
# Needs: go, md5sum, od, awk. Memory comes from /proc/PID/status and
# getrusage (bench/measure), so /usr/bin/time is not needed.
set -euo pipefail

PGURL=
if [[ ${1:-} == --catalog-url ]]; then
	PGURL=$2
	shift 2
fi
N=${1:-1000000}
ROUNDS=${ROUNDS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/syncer-bench.XXXXXX")}
OUT=${OUT:-$WORK/report.md}
BIN=$WORK/bin
RUNS=$WORK/runs.txt
mkdir -p "$BIN"
: >"$RUNS"

SERVER=
cleanup() {
	if [[ -n $SERVER ]] && kill -0 "$SERVER" 2>/dev/null; then
		kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
	fi
	if [[ ${KEEP:-0} != 1 ]]; then
		rm -rf "$WORK/cat"* "$BIN"
	fi
}
PGDBS=()
pgcleanup() {
	for db in "${PGDBS[@]}"; do psql -q "$PGURL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; done
}
trap 'cleanup; [[ -z $PGURL ]] || pgcleanup' EXIT
if [[ -n $PGURL ]] && ! command -v psql >/dev/null; then
	PATH=$PATH:$(dirname "$(ls -d /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)")
fi

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log "building into $BIN"
(cd "$ROOT" && go build -o "$BIN/syncer" ./cmd/syncer &&
	go build -o "$BIN/" ./bench/s3server ./bench/listloop ./bench/measure)

log "filling gofakes3 with $N objects"
start_s3server "$N"
log "$READY"

# pgdb ROUND: the database name of a round's catalog.
pgdb() { echo "syncer_bench_$(basename "$WORK" | tr -c 'a-zA-Z0-9\n' _)_$1" | tr 'A-Z' 'a-z'; }
pgurl() { # pgurl DB: $PGURL with its database replaced
	local base=${PGURL%%\?*} query=
	[[ $PGURL == *\?* ]] && query="?${PGURL#*\?}"
	echo "${base%/*}/$1$query"
}
catalog_of() { # catalog_of ROUND: the catalog's config, creating its database
	if [[ -z $PGURL ]]; then
		echo "path: \"$WORK/cat$1\""
		return
	fi
	local db
	db=$(pgdb "$1")
	psql -q "$PGURL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >&2
	PGDBS+=("$db")
	echo "url: \"$(pgurl "$db")\""
}
# pgwrites ROUND: rows inserted, updated and deleted in the round's database.
# A backend reports its counts when it exits, which can be after the
# client that used it has: wait (10 s at most) until the scan's backends
# are gone, or the first scan's last UPDATE shows up as the rescan's.
pgwrites() {
	local url i
	url=$(pgurl "$(pgdb "$1")")
	for i in $(seq 100); do
		[[ $(psql -qtA "$url" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()") == 0 ]] && break
		sleep 0.1
	done
	psql -qtA "$url" -c "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
}

config() { # config ROUND [NATSPORT]: a config whose catalog lives in $WORK/catROUND
	cat >"$WORK/cfg$1.yaml" <<EOF
# NATS is used by the import runs only; the others run with --publish=false.
nats: {url: embedded, listen: "127.0.0.1:${2:-4222}"}
catalog: {$(catalog_of "$1")}
sources:
  - id: bench
    provider: s3
    bucket: bench
    s3: {endpoint: "$URL", region: us-east-1, pathStyle: true}
${LISTCONC:+    listConcurrency: $LISTCONC}
EOF
	if [[ ${INDEX:-0} == 1 ]]; then
		echo "    assets: {index: true}" >>"$WORK/cfg$1.yaml"
	fi
}

measure() { # measure LABEL command...: one measured run, output kept in $WORK/LABEL.{out,err}
	local label=$1
	shift
	log "run $label"
	if ! "$BIN/measure" -label "$label" -o "$RUNS" -- "$@" >"$WORK/$label.out" 2>"$WORK/$label.err"; then
		cat "$WORK/$label.err" >&2
		echo "$label failed" >&2
		exit 1
	fi
}

stats() { "$BIN/syncer" catalog stats --config "$WORK/cfg$1.yaml" | cut -f2-; }
# bbolt keeps two meta pages (0 and 1) and writes the newer transaction id to
# one of them on every commit; the id is the u64 at byte 64 of a meta page.
txid() {
	local db=$WORK/cat$1/catalog.db a b
	a=$(od -An -t u8 -j 64 -N 8 "$db" | tr -d ' ')
	b=$(od -An -t u8 -j $((4096 + 64)) -N 8 "$db" | tr -d ' ')
	echo $((a > b ? a : b))
}
# Everything but the two meta pages.
datahash() { tail -c +$((2 * 4096 + 1)) "$WORK/cat$1/catalog.db" | md5sum | cut -d' ' -f1; }

baseline() { measure "base$1" "$BIN/listloop" -endpoint "$URL" -bucket bench; }
scan() { measure "$1" "$BIN/syncer" scan --config "$WORK/cfg$2.yaml" --source bench --publish=false; }
import_() { measure "$1" "$BIN/syncer" scan --config "$WORK/cfg$2.yaml" --source bench; }

CHECKS=$WORK/checks.txt
: >"$CHECKS"
for r in $(seq 1 "$ROUNDS"); do
	config "$r"
	baseline "$r"
	scan "first$r" "$r"
	if [[ -n $PGURL ]]; then
		s0=$(stats "$r") w0=$(pgwrites "$r")
		scan "rescan$r" "$r"
		s1=$(stats "$r") w1=$(pgwrites "$r")
		ok=yes
		[[ $s0 == "$s1" && $w0 == "$w1" ]] || ok=NO
		printf 'rescan%s zero-writes=%s stats: %s -> %s; rows inserted+updated+deleted %s -> %s\n' \
			"$r" "$ok" "$s0" "$s1" "$w0" "$w1" >>"$CHECKS"
		config "i$r" $((20000 + RANDOM % 20000))
		import_ "import$r" "i$r"
		continue
	fi
	s0=$(stats "$r") t0=$(txid "$r") h0=$(datahash "$r") z0=$(stat -c %s "$WORK/cat$r/catalog.db")
	scan "rescan$r" "$r"
	# catalog.Open of an existing catalog writes nothing: the transaction id
	# must not move at all.
	t1=$(txid "$r") s1=$(stats "$r") h1=$(datahash "$r") z1=$(stat -c %s "$WORK/cat$r/catalog.db")
	ok=yes
	[[ $s0 == "$s1" && $h0 == "$h1" && $z0 == "$z1" && $t1 == "$t0" ]] || ok=NO
	printf 'rescan%s zero-writes=%s stats: %s -> %s; size %s -> %s; data pages %s; bbolt txid %s -> %s\n' \
		"$r" "$ok" "$s0" "$s1" "$z0" "$z1" "$([[ $h0 == "$h1" ]] && echo identical || echo CHANGED)" "$t0" "$t1" >>"$CHECKS"
	config "i$r" $((20000 + RANDOM % 20000))
	import_ "import$r" "i$r"
	rm -rf "$WORK/cati$r"
	if ((r < ROUNDS)); then
		rm -rf "$WORK/cat$r" # a 1M-object catalog is a few hundred MB
	fi
done
baseline $((ROUNDS + 1))
measure open "$BIN/syncer" catalog stats --config "$WORK/cfg$ROUNDS.yaml"
if [[ -n $PGURL ]]; then
	DBSIZE=$(psql -qtA "$PGURL" -c "SELECT pg_database_size('$(pgdb "$ROUNDS")')")
else
	DBSIZE=$(stat -c %s "$WORK/cat$ROUNDS/catalog.db")
fi

# Reconcile's own duration, from the scan summary ("... in 1.234s").
for f in "$WORK"/first*.out "$WORK"/rescan*.out "$WORK"/import*.out; do
	printf '%s %s\n' "$(basename "$f" .out)" "$(sed -n 's/.* in \([0-9.a-zµ]*\)$/\1/p' "$f")"
done >"$WORK/internal.txt"

{
	echo "## syncer scan benchmark: $N objects, catalog: $([[ -n $PGURL ]] && echo PostgreSQL || echo bbolt)$([[ ${INDEX:-0} == 1 ]] && echo ', indexed (assets: {index: true})')"
	echo
	echo "$(date -u +%FT%TZ), $(nproc) cores, $(uname -srm), $(go version | cut -d' ' -f3), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
	echo "Fill: $READY"
	echo "Catalog after the first scan: $((DBSIZE / 1048576)) MiB"
	echo
	awk -v n="$N" -v rounds="$ROUNDS" -v internal="$WORK/internal.txt" '
	function secs(d,  p) { # a Go duration ("850ms", "7.5s", "1m6.3s") in seconds
		if (d ~ /ms$/) return d / 1000
		if (d ~ /^[0-9.]+m[0-9]/) { split(d, p, "m"); return p[1] * 60 + p[2] }
		return d + 0
	}
	function med(arr, m,  i, j, t, s) { # median of arr[1..m]
		for (i = 1; i <= m; i++) s[i] = arr[i]
		for (i = 2; i <= m; i++) for (j = i; j > 1 && s[j-1] > s[j]; j--) { t = s[j]; s[j] = s[j-1]; s[j-1] = t }
		return m % 2 ? s[(m+1)/2] : (s[m/2] + s[m/2+1]) / 2
	}
	BEGIN {
		while ((getline line < internal) > 0) { split(line, p, " "); in_[p[1]] = p[2] }
	}
	{
		for (i = 1; i <= NF; i++) { split($i, p, "="); f[p[1]] = p[2] }
		l = f["label"]; order[++nr] = l
		wall[l] = f["wall_s"]; cpu[l] = f["user_s"] + f["sys_s"]
		rss[l] = f["maxrss_kb"] / 1024; anon[l] = f["peak_anon_kb"] / 1024; file[l] = f["peak_file_kb"] / 1024
		wr[l] = f["oublock"] / 2
	}
	END {
		print "| run | wall s | reconcile | after it s | CPU s | obj/s (wall) | peak RSS MB | anon MB | file MB | written KiB |"
		print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		for (k = 1; k <= nr; k++) {
			l = order[k]
			ops = (l == "open") ? "" : sprintf("%.0f", n / wall[l])
			after = (l in in_) ? sprintf("%.2f", wall[l] - secs(in_[l])) : ""
			printf "| %s | %.2f | %s | %s | %.2f | %s | %.1f | %.1f | %.1f | %d |\n", l, wall[l], (l in in_) ? in_[l] : "", after, cpu[l], ops, rss[l], anon[l], file[l], wr[l]
		}
		print ""
		print "reconcile: the duration the scan summary reports (schedule.Reconcile alone); after it: the rest of the wall"
		print "time (start, opening, and for an import the publishing left once the listing ended). CPU: user+sys of the measured"
		print "process (the server is another process). anon/file: peaks of RssAnon/RssFile sampled every 10 ms. written:"
		print "file-system writes of the process (getrusage oublock), its own stdout/stderr log files included."
		print ""
		print "Ratios to the mean of the baselines just before and after each scan (wall time; client CPU time in brackets):"
		print ""
		print "| round | first / base | rescan / base | import / base | import / first |"
		print "|---|---:|---:|---:|---:|"
		for (r = 1; r <= rounds; r++) {
			b = (wall["base" r] + wall["base" (r+1)]) / 2; bc = (cpu["base" r] + cpu["base" (r+1)]) / 2
			fw[r] = wall["first" r] / b; rw[r] = wall["rescan" r] / b
			fc[r] = cpu["first" r] / bc; rc[r] = cpu["rescan" r] / bc
			iw[r] = wall["import" r] / b; ic[r] = cpu["import" r] / bc
			# What publishing adds to the same scan: less sensitive to a
			# loaded machine than either ratio to the baseline.
			xw[r] = wall["import" r] / wall["first" r]; xc[r] = cpu["import" r] / cpu["first" r]
			printf "| %d | %.2f× (%.2f×) | %.2f× (%.2f×) | %.2f× (%.2f×) | %.2f× (%.2f×) |\n", r, fw[r], fc[r], rw[r], rc[r], iw[r], ic[r], xw[r], xc[r]
		}
		printf "| median | **%.2f×** (%.2f×) | **%.2f×** (%.2f×) | **%.2f×** (%.2f×) | **%.2f×** (%.2f×) |\n", med(fw, rounds), med(fc, rounds), med(rw, rounds), med(rc, rounds), med(iw, rounds), med(ic, rounds), med(xw, rounds), med(xc, rounds)
		ma = 0; for (k = 1; k <= nr; k++) if (order[k] ~ /^(first|rescan)/ && anon[order[k]] > ma) ma = anon[order[k]]
		print ""
		printf "Peak anonymous RSS of any scan: **%.1f MB** (target ≤ 64 MB).\n", ma
	}' "$RUNS"
	echo
	echo "Zero catalog writes on the rescan:"
	echo
	sed 's/^/- /' "$CHECKS"
	echo
	echo "Raw measurements (bench/measure):"
	echo
	echo '```'
	cat "$RUNS"
	echo '```'
} >"$OUT"
cat "$OUT"
if grep -q 'zero-writes=NO' "$CHECKS"; then
	echo "a rescan wrote to the catalog" >&2
	exit 1
fi
