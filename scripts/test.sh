#!/usr/bin/env bash
# The whole test suite, as README.md and .ci/run give it: installs the
# emulators from npm (Azurite for Azure Blob/Queue, fauxqs for SQS, on Node 22
# from the npm registry), starts them on loopback, runs `go test -race` over
# every package, stops them, and prints a one-line summary.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh ./catalog/...   # some packages (emulators still started)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
logs=$(mktemp -d)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name
  for _ in $(seq 1 150); do
    listening "$1" && return 0
    sleep 0.2
  done
  echo "test.sh: $2 did not start on port $1; its log:" >&2
  cat "$logs/$2.log" >&2 || true
  exit 1
}

# The image test puts Debian's CA bundle into the image it builds.
if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then
  echo "== installing ca-certificates (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates; } >"$logs/apt.log" 2>&1 \
    || { cat "$logs/apt.log" >&2; echo "test.sh: could not install ca-certificates" >&2; exit 1; }
fi

# The PostgreSQL catalog's tests start a throwaway cluster from Debian's
# binaries (internal/testkit/postgres.go) unless SYNCER_TEST_POSTGRES_URL
# names a server.
if [ -z "${SYNCER_TEST_POSTGRES_URL:-}" ] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  echo "== installing postgresql (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >"$logs/apt-postgresql.log" 2>&1 \
    || { cat "$logs/apt-postgresql.log" >&2; echo "test.sh: could not install postgresql" >&2; exit 1; }
fi

# The browser test (examples/editor) drives Debian's chromium headless.
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$logs/apt-chromium.log" 2>&1 \
    || { cat "$logs/apt-chromium.log" >&2; echo "test.sh: could not install chromium" >&2; exit 1; }
fi

# npm ci wipes and reinstalls node_modules (~600 MB); skip it when the
# installed tree came from this very lockfile.
if cmp -s testenv/package-lock.json testenv/node_modules/.syncer-installed-lock; then
  echo "== emulators already installed from testenv/package-lock.json"
else
  echo "== installing emulators (npm ci in testenv/)"
  (cd testenv && npm ci --no-audit --no-fund --loglevel=error >"$logs/npm.log" 2>&1) || { cat "$logs/npm.log" >&2; exit 1; }
  cp testenv/package-lock.json testenv/node_modules/.syncer-installed-lock
fi
node22=$root/testenv/node_modules/.bin/node

if listening 10000; then
  echo "== Azurite already listening on 10000; using it"
else
  "$node22" testenv/node_modules/azurite/dist/src/azurite.js --inMemoryPersistence --skipApiVersionCheck \
    --disableTelemetry --silent --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 \
    >"$logs/azurite.log" 2>&1 &
  pids+=($!)
fi
if listening 4566; then
  echo "== an SQS server already listening on 4566; using it"
else
  FAUXQS_PORT=4566 FAUXQS_LOGGER=false "$node22" testenv/node_modules/fauxqs/dist/cli.js >"$logs/fauxqs.log" 2>&1 &
  pids+=($!)
fi
wait_port 10000 azurite
wait_port 10001 azurite
wait_port 4566 fauxqs

export SYNCER_TEST_AZURITE_BLOB=http://127.0.0.1:10000/devstoreaccount1
export SYNCER_TEST_AZURITE_QUEUE=http://127.0.0.1:10001/devstoreaccount1
export SYNCER_TEST_SQS_ENDPOINT=http://127.0.0.1:4566

pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)
echo "== go test -race ${pkgs[*]}"
set +e
go test -race -count=1 -timeout 15m -v "${pkgs[@]}" >"$logs/test.log" 2>&1
rc=$?
set -e
# The package lines; on failure also the failures and what the tests logged.
grep -E '^(ok|FAIL|\?)\s' "$logs/test.log" || true
if [ $rc -ne 0 ]; then
  echo "== failures"
  grep -E -- '--- FAIL|^FAIL|panic:|\.go:[0-9]+:' "$logs/test.log" | grep -v -e '--- PASS' -e '--- SKIP' || true
  grep -q -- '--- FAIL' "$logs/test.log" || tail -50 "$logs/test.log"   # a build failure or a panic outside a test
  cp "$logs/test.log" "${TMPDIR:-/tmp}/syncer-test.log" && echo "full log: ${TMPDIR:-/tmp}/syncer-test.log"
fi

# A short run of every fuzz target (docs/reliability.md, "Fuzzing", has the
# long runs), on the whole suite only. SYNCER_FUZZTIME sets the time per
# target; 0 skips the step. The instrumented build is separate from the
# -race one: on a cold build cache it costs minutes, not seconds.
fuzztime=${SYNCER_FUZZTIME:-2s}
fuzz_passed=0 fuzz_failed=0
if [ $# -eq 0 ] && [ "$fuzztime" != 0 ]; then
  echo "== fuzz, $fuzztime per target"
  for pkg in ./providers/s3 ./providers/azure ./providers/gcs ./config; do
    for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$pkg"/*_test.go | sed 's/^func //'); do
      ok=0
      for attempt in 1 2; do
        if go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" -parallel 2 "$pkg" >"$logs/fuzz.log" 2>&1; then
          ok=1 && break
        fi
        # On a starved machine the fuzzing engine itself can time out
        # ("context deadline exceeded") without having found anything; a
        # found input is always written to testdata and fails at once.
        grep -q 'Failing input written to' "$logs/fuzz.log" && break
        grep -q 'context deadline exceeded' "$logs/fuzz.log" || break
        echo "fuzz $pkg $target: the engine timed out with no failing input; once more"
      done
      if [ $ok -eq 1 ]; then
        fuzz_passed=$((fuzz_passed + 1))
      else
        fuzz_failed=$((fuzz_failed + 1))
        echo "FAIL fuzz $pkg $target"
        tail -30 "$logs/fuzz.log"
        rc=1
      fi
    done
  done
fi
passed=$(grep -cE '^\s*--- PASS' "$logs/test.log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$logs/test.log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$logs/test.log" || true)
if [ $rc -ne 0 ] && [ "$failed" -eq 0 ] && [ "$fuzz_failed" -eq 0 ]; then failed=1; fi
echo
echo "tests: $passed passed, $failed failed, $skipped skipped; fuzz targets: $fuzz_passed passed, $fuzz_failed failed"
exit $rc
