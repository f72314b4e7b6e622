#!/usr/bin/env bash
# Load test of pass-through GET: the demo shop directly, credgate in front of
# it, and nginx configured as the same TLS proxy, all in one run with the same
# wrk settings. Prints a Markdown table on stdout; progress and the raw wrk
# output go to stderr.
#
#   benches/load/run.sh                      # DURATION=10s CONNECTIONS=32
#   DURATION=30s CONNECTIONS=64 benches/load/run.sh > results.md
#
# Everything listens on 127.0.0.1 only. Every process started here is stopped
# on exit. See benches/load/README.md for what the numbers mean.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2s}
THREADS=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
credgate=$target_dir/release/credgate

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------

install_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v h2load >/dev/null || missing+=(nghttp2-client)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    command -v pgrep >/dev/null || missing+=(procps)
    command -v python3 >/dev/null || missing+=(python3)
    ((${#missing[@]} == 0)) && return
    log "installing ${missing[*]}"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# --- processes -----------------------------------------------------------------

tmp=$(mktemp -d -t credgate-load.XXXXXX)
shop_pid='' credgate_pid='' nginx_pid=''

# Sends $2 to pid $1, waits up to 10 s for it to exit, then kills it.
stop() {
    local pid=$1 signal=$2
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop "$nginx_pid" TERM
    stop "$credgate_pid" TERM
    stop "$shop_pid" INT
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# N distinct free TCP ports on 127.0.0.1 (all bound at once, so no repeats).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Waits until `curl` fetches $2 successfully; fails early if pid $1 died.
wait_ready() {
    local pid=$1 url=$2 name=$3
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (logs in $tmp)"
        curl -fsS -o /dev/null --cacert "$tmp/cert.pem" "$url" 2>/dev/null && return
        sleep 0.1
    done
    die "$name did not answer $url within 10 s"
}

make_cert() {
    local args=(req -x509 -nodes -days 2 -subj /CN=localhost
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
        -keyout "$tmp/key.pem" -out "$tmp/cert.pem")
    openssl "${args[@]}" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 2>/dev/null ||
        openssl "${args[@]}" -newkey rsa:2048 2>/dev/null
}

start_shop() {
    "$credgate" demo-shop --listen "127.0.0.1:$shop_port" >"$tmp/shop.log" 2>&1 &
    shop_pid=$!
    wait_ready "$shop_pid" "http://127.0.0.1:$shop_port/" "the demo shop"
}

start_credgate() {
    cat >"$tmp/credgate.toml" <<EOF
[server]
listen = "127.0.0.1:$credgate_port"
admin_listen = "127.0.0.1:$admin_port"
tls_cert = "$tmp/cert.pem"
tls_key = "$tmp/key.pem"

[upstream]
url = "http://127.0.0.1:$shop_port"

[log]
format = "json"
level = "warn"
EOF
    "$credgate" serve --config "$tmp/credgate.toml" >"$tmp/credgate.log" 2>&1 &
    credgate_pid=$!
    wait_ready "$credgate_pid" "https://127.0.0.1:$credgate_port/" "credgate"
}

# nginx as the same TLS proxy: TLS 1.2/1.3, keep-alive to the shop, the same
# forwarded headers credgate sets, one worker per core (credgate's tokio
# runtime also has one worker thread per core).
start_nginx() {
    mkdir -p "$tmp/nginx"
    cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;

    upstream shop {
        server 127.0.0.1:$shop_port;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:$nginx_port ssl;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;

        location / {
            proxy_pass http://shop;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Forwarded "for=\$remote_addr;host=\"\$http_host\";proto=\$scheme";
        }
    }
}
EOF
    local nginx=(/usr/sbin/nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf")
    "${nginx[@]}" -t -q || die "nginx rejected its configuration"
    "${nginx[@]}" -g 'daemon off;' >"$tmp/nginx/stdout.log" 2>&1 &
    nginx_pid=$!
    wait_ready "$nginx_pid" "https://127.0.0.1:$nginx_port/" "nginx"
}

# --- measurement -----------------------------------------------------------------

# Total utime+stime of the given pids, in clock ticks (/proc/PID/stat fields
# 14 and 15, counted after the parenthesised command name).
cpu_ticks() {
    local total=0 pid fields
    for pid in "$@"; do
        read -r -a fields < <(sed 's/^.*) //' "/proc/$pid/stat")
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# A latency as wrk prints it ("812.00us", "1.27ms", "2.01s") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
        if (f < 0) { print "?"; exit }
        printf "%.2f", n * f
    }'
}

# µs of CPU per request from a tick delta and a request count.
per_request_us() {
    awk -v t="$1" -v hz="$clk_tck" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "n/a" }'
}

rows=()
problems=()
declare -A proxy_cpu_us

# True if every given pid is still running.
alive() {
    local pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# bench ID NAME URL "PROXY-PIDS": a warm-up, then one measured wrk run while
# the CPU time of the proxy's processes (none for the shop itself) and of the
# shop is sampled.
bench() {
    local id=$1 name=$2 url=$3 pids
    read -r -a pids <<<"$4"
    local wrk=(wrk "-t$THREADS" "-c$CONNECTIONS" --latency "$url")
    log "$name: warm-up ($WARMUP)"
    "${wrk[@]}" -d "$WARMUP" >/dev/null
    log "$name: measuring ($DURATION)"
    local proxy_before shop_before out
    proxy_before=$(cpu_ticks "${pids[@]}")
    shop_before=$(cpu_ticks "$shop_pid")
    out=$("${wrk[@]}" -d "$DURATION")
    alive "$shop_pid" "${pids[@]}" || die "$name: a server process exited during the run (logs in $tmp)"
    local proxy_ticks=$(($(cpu_ticks "${pids[@]}") - proxy_before))
    local shop_ticks=$(($(cpu_ticks "$shop_pid") - shop_before))
    printf '%s\n' "$out" >&2

    local requests rps p50 p99 errors
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    errors=$(awk '/Socket errors:|Non-2xx or 3xx responses:/' <<<"$out" | sed 's/^ *//' | paste -sd ';' -)
    if [[ -n $errors ]]; then
        problems+=("$name: $errors")
    else
        errors=none
    fi

    local proxy_us=n/a shop_us
    ((${#pids[@]} == 0)) || proxy_us=$(per_request_us "$proxy_ticks" "$requests")
    shop_us=$(per_request_us "$shop_ticks" "$requests")
    proxy_cpu_us[$id]=$proxy_us
    rows+=("| $name | $requests | $rps | $p50 | $p99 | $proxy_us | $shop_us | $errors |")
}

tls_summary() {
    openssl s_client -brief -connect "127.0.0.1:$1" </dev/null 2>&1 |
        awk -F': ' '/^Protocol version|^Ciphersuite/ { v = v (v ? " " : "") $2 } END { print v }'
}

# --- run -----------------------------------------------------------------------

install_tools

log "building credgate (release, target dir $target_dir)"
(cd "$repo" && cargo build --release --quiet)
[[ -x $credgate ]] || die "no binary at $credgate"
# The commit built, with "-dirty" if the working tree had uncommitted changes.
build=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)

clk_tck=$(getconf CLK_TCK)
read -r shop_port credgate_port admin_port nginx_port < <(free_ports 4)
make_cert || die "openssl could not create a certificate"

start_shop
start_credgate
start_nginx
nginx_pids="$nginx_pid $(pgrep -P "$nginx_pid" | paste -sd ' ' -)"
log "shop pid $shop_pid, credgate pid $credgate_pid, nginx pids $nginx_pids"

# Same response body through all three, or the comparison means nothing.
direct_body=$(curl -fsS "http://127.0.0.1:$shop_port/")
for port in "$credgate_port" "$nginx_port"; do
    [[ "$(curl -fsS --cacert "$tmp/cert.pem" "https://127.0.0.1:$port/")" == "$direct_body" ]] ||
        die "the proxy on port $port does not return the shop's page"
done

tls_credgate=$(tls_summary "$credgate_port")
tls_nginx=$(tls_summary "$nginx_port")

bench shop "shop direct (http)" "http://127.0.0.1:$shop_port/" ""
bench credgate "credgate (https)" "https://127.0.0.1:$credgate_port/" "$credgate_pid"
bench nginx "nginx (https)" "https://127.0.0.1:$nginx_port/" "$nginx_pids"

# What the servers logged (both at level warn), one line per distinct message
# with its count.
notes=()
while read -r count message; do
    notes+=("credgate logged ${count}×: $message")
done < <(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$tmp/credgate.log" | sort | uniq -c)
while read -r count message; do
    notes+=("nginx logged ${count}×: $message")
done < <(grep -v '\[notice\]' "$tmp/nginx/error.log" | sed 's/^[0-9/]* [0-9:]* //' | sort | uniq -c)

cat <<EOF
### Pass-through GET /: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP)

$(nproc) CPUs, shared by wrk, the shop and the proxy. credgate $build, $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{ print "wrk " $2 }').
TLS (openssl s_client, same library as wrk): credgate $tls_credgate, nginx $tls_nginx.

| target | requests | req/s | p50 ms | p99 ms | proxy CPU µs/req | shop CPU µs/req | errors |
|---|---:|---:|---:|---:|---:|---:|---|
$(printf '%s\n' "${rows[@]}")

EOF
awk -v c="${proxy_cpu_us[credgate]}" -v n="${proxy_cpu_us[nginx]}" 'BEGIN {
    if (n > 0) printf "credgate / nginx proxy CPU per request: %.2f\n", c / n
}'
if ((${#notes[@]} > 0)); then
    printf '\nServer logs:\n'
    printf -- '- %s\n' "${notes[@]}"
fi
# Socket errors or non-2xx responses make the numbers meaningless: fail.
if ((${#problems[@]} > 0)); then
    printf '\nProblems:\n'
    printf -- '- %s\n' "${problems[@]}"
    exit 1
fi
