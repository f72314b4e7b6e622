#!/usr/bin/env bash
# Instructions per request of credgate (user space only), counted by
# valgrind's callgrind: repeatable to a fraction of a percent however busy
# the machine is, unlike CPU time. For each workload: a warm-up, the counters
# zeroed, REQUESTS requests over CONNECTIONS keep-alive TLS connections
# (h2load, a fixed count), a dump; instructions / REQUESTS.
#
#   benches/load/callgrind.sh                       # REQUESTS=5000
#   CREDGATE=/path/to/credgate benches/load/callgrind.sh
#
# Prints a Markdown table on stdout; the callgrind files stay in OUT
# (default: a temporary directory, deleted) for callgrind_annotate.
set -euo pipefail

REQUESTS=${REQUESTS:-5000}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-500}
CONNECTIONS=${CONNECTIONS:-8}
WORKLOADS=${WORKLOADS:-"get-h1 get-h2 login-h1"}
# Extra lines for credgate's [server] table.
CREDGATE_SERVER_EXTRA=${CREDGATE_SERVER_EXTRA:-}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
credgate=${CREDGATE:-${CARGO_TARGET_DIR:-$repo/target}/release/credgate}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v h2load >/dev/null || die "h2load is not installed (apt-get install nghttp2-client)"
[[ -x $credgate ]] || die "no binary at $credgate (cargo build --release)"

tmp=$(mktemp -d -t credgate-callgrind.XXXXXX)
out=${OUT:-$tmp/out}
mkdir -p "$out"
shop_pid='' credgate_pid=''
cleanup() {
    for pid in $credgate_pid $shop_pid; do
        kill -INT "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r shop_port credgate_port admin_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')

openssl req -x509 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
"$credgate" build-filter --kind pairs --input "$repo/config/demo-breach.txt" --output "$tmp/pairs.cgf" >/dev/null 2>&1
"$credgate" build-filter --kind passwords --input "$repo/config/demo-passwords.txt" --output "$tmp/passwords.cgf" >/dev/null 2>&1
printf 'username=alice%%40example.com&password=wonderland-42' >"$tmp/login.form"

# The same configuration as run.sh: full inspection of /login, limits off.
cat >"$tmp/credgate.toml" <<EOF
[server]
listen = "127.0.0.1:$credgate_port"
admin_listen = "127.0.0.1:$admin_port"
tls_cert = "$tmp/cert.pem"
tls_key = "$tmp/key.pem"
$CREDGATE_SERVER_EXTRA

[upstream]
url = "http://127.0.0.1:$shop_port"

[[login]]
path = "/login"
format = "auto"

[leaked]
pairs_filter = "$tmp/pairs.cgf"
passwords_filter = "$tmp/passwords.cgf"
on_leaked_pair = "block"
on_leaked_password = "annotate"
username_normalization = "auto"

[limits]
ip = "off"
subnet = "off"
username = "off"
global = "off"

[attack]
untrusted_budget = "off"

[log]
format = "json"
level = "warn"
EOF

"$credgate" demo-shop --listen "127.0.0.1:$shop_port" >"$tmp/shop.log" 2>&1 &
shop_pid=$!
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p.dump" \
    "$credgate" serve --config "$tmp/credgate.toml" >"$tmp/credgate.log" 2>&1 &
credgate_pid=$!
log "credgate under callgrind (pid $credgate_pid), waiting for it to answer"
for _ in $(seq 600); do
    kill -0 "$credgate_pid" 2>/dev/null || die "credgate exited: $(tail -5 "$tmp/credgate.log")"
    curl -fsS -o /dev/null --cacert "$tmp/cert.pem" "https://127.0.0.1:$credgate_port/" 2>/dev/null && break
    sleep 0.5
done

# h2load arguments of a workload.
args() {
    local url="https://127.0.0.1:$credgate_port"
    case $1 in
    get-h1) echo "--h1 $url/" ;;
    get-h2) echo "$url/" ;;
    login-h1) echo "--h1 -d $tmp/login.form -H content-type:application/x-www-form-urlencoded $url/login" ;;
    login-h2) echo "-d $tmp/login.form -H content-type:application/x-www-form-urlencoded $url/login" ;;
    *) die "unknown workload $1" ;;
    esac
}

rows=()
for workload in $WORKLOADS; do
    # shellcheck disable=SC2046
    h2load -t1 "-c$CONNECTIONS" "-n$WARMUP_REQUESTS" $(args "$workload") >/dev/null
    callgrind_control -z "$credgate_pid" >/dev/null
    log "$workload: $REQUESTS requests"
    # shellcheck disable=SC2046
    result=$(h2load -t1 "-c$CONNECTIONS" "-n$REQUESTS" $(args "$workload"))
    grep -q "^requests: $REQUESTS total, $REQUESTS started, $REQUESTS done, $REQUESTS succeeded" <<<"$result" ||
        die "$workload: not every request succeeded: $(grep '^requests:\|^status' <<<"$result")"
    before=$(ls "$out" | wc -l)
    callgrind_control -d "$workload" "$credgate_pid" >/dev/null
    for _ in $(seq 100); do
        (($(ls "$out" | wc -l) > before)) && break
        sleep 0.1
    done
    dump=$(ls -t "$out"/callgrind.out.* | head -1)
    cp "$dump" "$out/$workload.callgrind"
    instructions=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
    per=$(awk -v i="$instructions" -v n="$REQUESTS" 'BEGIN { printf "%.0f", i / n }')
    log "$workload: $instructions instructions, $per per request"
    rows+=("| $workload | $REQUESTS | $per |")
done

cat <<EOF
### credgate instructions per request (callgrind, user space)

credgate $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown); $CONNECTIONS keep-alive TLS connections, $REQUESTS requests per workload after $WARMUP_REQUESTS of warm-up.

| workload | requests | instructions / request |
|---|---:|---:|
$(printf '%s\n' "${rows[@]}")
EOF
