# bench/lib.sh — what the bench scripts share; source it after setting WORK and BIN.

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# free_port: a TCP port on 127.0.0.1 nothing listens on right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_s3server N [FLAGS...]: bench/s3server (built into $BIN) filled with N
# objects in bucket "bench", in the background; returns once it is READY and
# sets SERVER (its pid), READY (its ready line) and URL (its endpoint), and
# the AWS environment that keeps the SDKs from looking for a shared config,
# credentials or instance metadata on the way to it.
start_s3server() {
	local n=$1
	shift
	"$BIN/s3server" -n "$n" -bucket bench "$@" >"$WORK/server.out" 2>"$WORK/server.err" &
	SERVER=$!
	until grep -q '^READY' "$WORK/server.out" 2>/dev/null; do
		if ! kill -0 "$SERVER" 2>/dev/null; then
			cat "$WORK/server.err" >&2
			echo "s3server died while filling" >&2
			exit 1
		fi
		sleep 0.5 # polling the server's own ready line, a file
	done
	READY=$(grep '^READY' "$WORK/server.out")
	URL=$(sed -n 's/.* url=\([^ ]*\).*/\1/p' <<<"$READY")
	export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
	export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
}
