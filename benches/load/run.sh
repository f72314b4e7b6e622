#!/usr/bin/env bash
# credgate and nginx side by side, in one run, as TLS 1.3 reverse proxies in
# front of the same upstream (`credgate demo-shop`), with the same
# certificate. Each proxy is pinned to one core (PROXY_CPU), the load
# generator and the shop to the other (LOAD_CPU). For every workload the
# proxy's CPU time (user + system, from /proc) is read around the measured
# run and divided by the requests completed, and how busy the load
# generator's core was. Then the RSS of each proxy holding IDLE_CONNECTIONS
# idle keep-alive TLS connections, for each protocol of IDLE_ALPN.
#
#   benches/load/run.sh                          # DURATION=10 CONNECTIONS=64
#   ROUNDS=3 benches/load/run.sh > results.md    # medians of three rounds
#
# Prints Markdown on stdout; progress and the raw tool output go to stderr.
# Everything listens on 127.0.0.1 only; every process started here is stopped
# on exit. See benches/load/README.md for what the numbers mean.
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-1}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
# The ALPN protocols of the memory figure, one figure each: HTTP/1.1 as
# scripts and bots speak it, HTTP/2 as browsers do; "none" offers no ALPN,
# as wrk (set but empty means the same).
IDLE_ALPN=${IDLE_ALPN-"http/1.1 h2"}
IDLE_ALPN=${IDLE_ALPN:-none}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
WORKLOADS=${WORKLOADS:-"get-h1 get-h2 login-h1 login-new-tls"}
# Requests per second offered in total on the keep-alive workloads; 0: as
# fast as the load generator goes (closed loop). With a rate, h2load paces
# every keep-alive workload (HTTP/1.1 too), so that both proxies work at the
# same rate: CPU per request depends on it.
RATE=${RATE:-0}
BUILD=${BUILD:-1}
# Extra lines for credgate's [server] table (e.g. a runtime setting).
CREDGATE_SERVER_EXTRA=${CREDGATE_SERVER_EXTRA:-}
# A directory: each measured run is also recorded by `perf record` there
# (WORKLOAD-PROXY-ROUND.data), for `perf report`. Sampling slows both
# proxies (about threefold on a small VM): read the profiles, not that
# run's figures.
PERF_DIR=${PERF_DIR:-}
# Extra `perf record` options with PERF_DIR, e.g. "--call-graph dwarf" (for
# a binary built with debug line tables: CARGO_PROFILE_RELEASE_DEBUG=line-tables-only).
read -r -a perf_args <<<"${PERF_ARGS:-}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
credgate=${CREDGATE:-$target_dir/release/credgate}

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
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v ss >/dev/null || missing+=(iproute2)
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
shop_pid='' credgate_pid='' nginx_pid='' idle_pid=''

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
    stop "$idle_pid" TERM
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
    openssl req -x509 -nodes -days 2 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
}

on_load_cpu() { taskset -c "$LOAD_CPU" "$@"; }

start_shop() {
    # taskset directly, not through a function: `$!` must be the shop's pid.
    taskset -c "$LOAD_CPU" "$credgate" demo-shop --listen "127.0.0.1:$shop_port" >"$tmp/shop.log" 2>&1 &
    shop_pid=$!
    wait_ready "$shop_pid" "http://127.0.0.1:$shop_port/" "the demo shop"
}

# Full inspection on /login (the filters of `credgate demo`, risk, suspicion,
# attack mode) with every rate limit off, so that nothing throttles; the
# benchmark logs in as a demo customer with the right password, which the
# shop accepts (never a ban). Timeouts long enough to hold idle connections
# through the memory measurement.
start_credgate() {
    "$credgate" build-filter --kind pairs --input "$repo/config/demo-breach.txt" \
        --output "$tmp/pairs.cgf" >/dev/null 2>&1 || die "cannot build the pairs filter"
    "$credgate" build-filter --kind passwords --input "$repo/config/demo-passwords.txt" \
        --output "$tmp/passwords.cgf" >/dev/null 2>&1 || die "cannot build the passwords filter"
    cat >"$tmp/credgate.toml" <<EOF
[server]
listen = "127.0.0.1:$credgate_port"
admin_listen = "127.0.0.1:$admin_port"
tls_cert = "$tmp/cert.pem"
tls_key = "$tmp/key.pem"
max_connections = 30000
header_read_timeout = "600s"
idle_timeout = "600s"
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
    taskset -c "$PROXY_CPU" "$credgate" serve --config "$tmp/credgate.toml" >>"$tmp/credgate.log" 2>&1 &
    credgate_pid=$!
    wait_ready "$credgate_pid" "https://127.0.0.1:$credgate_port/" "credgate"
}

# nginx as the same TLS proxy: TLS 1.3, HTTP/2 and HTTP/1.1, keep-alive to
# the shop, the same forwarded headers credgate sets, one worker on the one
# core it has (credgate's runtime also has one worker thread there). No
# per-connection request cap (nginx's default closes a keep-alive connection
# after 1000 requests, which would add handshakes to its figures).
start_nginx() {
    mkdir -p "$tmp/nginx"
    cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $(ulimit -Hn);
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;

events {
    worker_connections $(($(ulimit -Hn) - 100));
}

http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_timeout 600s;
    keepalive_requests 100000000;
    client_header_timeout 600s;

    upstream shop {
        server 127.0.0.1:$shop_port;
        keepalive 64;
        keepalive_requests 100000000;
    }

    server {
        listen 127.0.0.1:$nginx_port ssl http2;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        ssl_protocols TLSv1.3;

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
    taskset -c "$PROXY_CPU" "${nginx[@]}" -g 'daemon off;' >"$tmp/nginx/stdout.log" 2>&1 &
    nginx_pid=$!
    wait_ready "$nginx_pid" "https://127.0.0.1:$nginx_port/" "nginx"
}

# --- measurement -----------------------------------------------------------------

# Total utime and stime of the given pids, in clock ticks (/proc/PID/stat
# fields 14 and 15, counted after the parenthesised command name): "user system".
cpu_ticks() {
    local user=0 system=0 pid fields
    for pid in "$@"; do
        read -r -a fields < <(sed 's/^.*) //' "/proc/$pid/stat")
        user=$((user + fields[11]))
        system=$((system + fields[12]))
    done
    echo "$user $system"
}

# "busy total" clock ticks of core $1 since boot (/proc/stat): busy is all
# but idle and iowait.
core_ticks() {
    awk -v cpu="cpu$1" '$1 == cpu { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

# Resident memory of the given pids, KiB.
rss_kib() {
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")))
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

# True if every given pid is still running.
alive() {
    local pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# Writes the wrk Lua script of a login workload to $1; $2 = "close" asks for
# a new connection (and TLS handshake) per request.
login_script() {
    cat >"$1" <<'EOF'
wrk.method = "POST"
wrk.body = "username=alice%40example.com&password=wonderland-42"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
EOF
    [[ ${2:-} == close ]] && echo 'wrk.headers["Connection"] = "close"' >>"$1"
    return 0
}

# The load generator for workload $1 against port $2, for $3 seconds;
# extra arguments are appended. Prints its raw output.
load() {
    local workload=$1 port=$2 seconds=$3
    local url="https://127.0.0.1:$port"
    if ((RATE > 0)) && [[ $workload != login-new-tls ]]; then
        local args=("--rps=$((RATE / CONNECTIONS))")
        case $workload in
        get-h1) args+=(--h1 "$url/") ;;
        get-h2) args+=("$url/") ;;
        login-h1) args+=(--h1 -d "$tmp/login.form" -H "content-type: application/x-www-form-urlencoded" "$url/login") ;;
        *) die "unknown workload $workload" ;;
        esac
        rm -f "$tmp/h2.log"
        on_load_cpu h2load -t1 "-c$CONNECTIONS" "-D$seconds" --log-file="$tmp/h2.log" "${args[@]}"
        return
    fi
    case $workload in
    get-h1) on_load_cpu wrk -t1 "-c$CONNECTIONS" "-d${seconds}s" --latency "$url/" ;;
    login-h1) on_load_cpu wrk -t1 "-c$CONNECTIONS" "-d${seconds}s" --latency -s "$tmp/login.lua" "$url/login" ;;
    login-new-tls) on_load_cpu wrk -t1 "-c$CONNECTIONS" "-d${seconds}s" --latency -s "$tmp/login-close.lua" "$url/login" ;;
    get-h2)
        rm -f "$tmp/h2.log"
        on_load_cpu h2load -t1 "-c$CONNECTIONS" -m1 "-D$seconds" --log-file="$tmp/h2.log" "$url/"
        ;;
    *) die "unknown workload $workload" ;;
    esac
}

# Parses the load generator's output ($2) of workload $1 into
# "requests p99_ms errors" (errors: none, or a ';'-separated summary).
parse() {
    local workload=$1 out=$2 requests p99 errors
    if [[ $workload == get-h2 ]] || { ((RATE > 0)) && [[ $workload != login-new-tls ]]; }; then
        workload=h2load
    fi
    case $workload in
    h2load)
        requests=$(awk '/^requests:/ { print $8 }' <<<"$out") # succeeded
        p99=$(awk -F'\t' '{ print $3 }' "$tmp/h2.log" | sort -n |
            awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f", v[i] / 1000 }')
        errors=$(awk '/^requests:/ { if ($10 + $12 + $14 > 0) print "failed " $10 ", errored " $12 ", timeout " $14 }
                      /^status codes:/ { if ($7 + $9 > 0) print "4xx or 5xx: " $0 }' <<<"$out" | paste -sd ';' -)
        ;;
    *)
        requests=$(awk '/requests in/ { print $1 }' <<<"$out")
        p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
        errors=$(awk '/Socket errors:|Non-2xx or 3xx responses:/' <<<"$out" | sed 's/^ *//' | paste -sd ';' -)
        ;;
    esac
    echo "${requests:-0} ${p99:-?} ${errors:-none}"
}

declare -A cpu user p99 rps load_busy
problems=()
clk_tck=$(getconf CLK_TCK)

# measure WORKLOAD PROXY PORT "PIDS": a warm-up, then one measured run while
# the CPU time of the proxy's processes is sampled. Appends the round's
# figures to cpu/p99/rps[WORKLOAD:PROXY].
measure() {
    local workload=$1 proxy=$2 port=$3 pids
    read -r -a pids <<<"$4"
    log "$workload / $proxy: warm-up ${WARMUP}s"
    load "$workload" "$port" "$WARMUP" >/dev/null 2>&1 || true
    log "$workload / $proxy: measuring ${DURATION}s"
    local before after out
    local recorder=''
    if [[ -n $PERF_DIR ]]; then
        perf record -q "${perf_args[@]}" -o "$PERF_DIR/$workload-$proxy-$round.data" -p "$(IFS=,; echo "${pids[*]}")" >/dev/null 2>&1 &
        recorder=$!
    fi
    local core_before core_after
    before=$(cpu_ticks "${pids[@]}")
    core_before=$(core_ticks "$LOAD_CPU")
    out=$(load "$workload" "$port" "$DURATION" 2>&1) || die "$workload / $proxy: the load generator failed: $out"
    after=$(cpu_ticks "${pids[@]}")
    core_after=$(core_ticks "$LOAD_CPU")
    [[ -n $recorder ]] && stop "$recorder" INT
    alive "$shop_pid" "${pids[@]}" || die "$workload / $proxy: a server process exited during the run (logs in $tmp)"
    printf '%s\n' "$out" >&2
    local requests latency errors
    read -r requests latency errors <<<"$(parse "$workload" "$out")"
    [[ $errors == none ]] || problems+=("$workload / $proxy: $errors")
    local us user_us
    read -r us user_us <<<"$(awk -v b="$before" -v a="$after" -v hz="$clk_tck" -v n="$requests" 'BEGIN {
        split(b, x, " "); split(a, y, " "); u = y[1] - x[1]; s = y[2] - x[2]
        if (n > 0) printf "%.1f %.1f", (u + s) / hz * 1e6 / n, u / hz * 1e6 / n; else print "0 0" }')"
    local key=$workload:$proxy
    cpu[$key]+="$us "
    user[$key]+="$user_us "
    p99[$key]+="$latency "
    rps[$key]+="$(awk -v n="$requests" -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }') "
    # How busy the load generator's core was: near 100 %, the load
    # generator (and the shop beside it) is the bottleneck, and the latency
    # it reports is partly its own queue.
    load_busy[$key]+="$(awk -v b="$core_before" -v a="$core_after" 'BEGIN {
        split(b, x, " "); split(a, y, " "); t = y[2] - x[2]
        if (t > 0) printf "%.0f", 100 * (y[1] - x[1]) / t; else print "?" }') "
    log "$workload / $proxy: $requests requests, $us µs CPU each, p99 $latency ms"
}

# The median of the numbers given.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "?"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# idle_rss PROXY PORT "PIDS" ALPN: RSS before and while IDLE_CONNECTIONS
# idle keep-alive TLS connections (one GET each, then silence) are held open.
# Prints "rss_before_kib rss_held_kib established".
idle_rss() {
    local proxy=$1 port=$2 pids alpn=${4/#none/}
    read -r -a pids <<<"$3"
    log "memory / $proxy: opening $IDLE_CONNECTIONS idle TLS connections (ALPN: ${4})"
    local before
    before=$(rss_kib "${pids[@]}")
    # A file, not a coprocess: bash may close a new coprocess's pipe when it
    # reaps the previous one, which read as an empty answer.
    local said="$tmp/idle-$proxy-${4//\//}.out"
    IDLE_ALPN=$alpn taskset -c "$LOAD_CPU" python3 "$here/idle_connections.py" \
        127.0.0.1 "$port" "$IDLE_CONNECTIONS" "$tmp/cert.pem" >"$said" &
    idle_pid=$!
    local line=''
    for _ in $(seq 1800); do
        line=$(head -n1 "$said")
        [[ -n $line ]] || ! kill -0 "$idle_pid" 2>/dev/null && break
        sleep 0.1
    done
    line=$(head -n1 "$said")
    [[ $line == ready* ]] || die "memory / $proxy: the client did not get its connections up: $line"
    sleep 2
    local held established
    held=$(rss_kib "${pids[@]}")
    established=$(ss -Htn state established "( sport = :$port )" | wc -l)
    stop "$idle_pid" TERM
    idle_pid=''
    log "memory / $proxy: RSS $before KiB idle, $held KiB with $established connections"
    echo "$before $held $established"
}

tls_summary() {
    openssl s_client -brief -connect "127.0.0.1:$1" </dev/null 2>&1 |
        awk -F': ' '/^Protocol version|^Ciphersuite/ { v = v (v ? " " : "") $2 } END { print v }'
}

# --- run -----------------------------------------------------------------------

install_tools
[[ -z $PERF_DIR ]] || { command -v perf >/dev/null || die "PERF_DIR needs perf (apt-get install linux-perf)"; mkdir -p "$PERF_DIR"; }
ulimit -n "$(ulimit -Hn)"

if ((BUILD)); then
    log "building credgate (release, target dir $target_dir)"
    (cd "$repo" && cargo build --release --quiet)
fi
[[ -x $credgate ]] || die "no binary at $credgate"
# The commit built, with "-dirty" if the working tree had uncommitted changes.
build=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)

read -r shop_port credgate_port admin_port nginx_port < <(free_ports 4)
make_cert || die "openssl could not create a P-256 certificate"
login_script "$tmp/login.lua"
login_script "$tmp/login-close.lua" close
printf 'username=alice%%40example.com&password=wonderland-42' >"$tmp/login.form"

start_shop
start_credgate
start_nginx
nginx_pids="$nginx_pid $(pgrep -P "$nginx_pid" | paste -sd ' ' -)"
log "shop pid $shop_pid, credgate pid $credgate_pid, nginx pids $nginx_pids"

# Same page and same login answer through both, or the comparison means
# nothing.
direct_body=$(curl -fsS "http://127.0.0.1:$shop_port/")
for port in "$credgate_port" "$nginx_port"; do
    [[ "$(curl -fsS --cacert "$tmp/cert.pem" "https://127.0.0.1:$port/")" == "$direct_body" ]] ||
        die "the proxy on port $port does not return the shop's page"
    curl -fsS -o /dev/null --cacert "$tmp/cert.pem" "https://127.0.0.1:$port/login" \
        --data-urlencode username=alice@example.com --data-urlencode password=wonderland-42 ||
        die "the proxy on port $port does not let the benchmark's login through"
done

tls_credgate=$(tls_summary "$credgate_port")
tls_nginx=$(tls_summary "$nginx_port")
started=$(date -u +%H:%M:%S)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

for round in $(seq "$ROUNDS"); do
    for workload in $WORKLOADS; do
        # Alternate who goes first, so that neither always gets the quieter
        # half of a round.
        if ((round % 2)); then order="credgate nginx"; else order="nginx credgate"; fi
        for proxy in $order; do
            case $proxy in
            credgate) measure "$workload" credgate "$credgate_port" "$credgate_pid" ;;
            nginx) measure "$workload" nginx "$nginx_port" "$nginx_pids" ;;
            esac
        done
    done
done

memory_rows=()
if ((IDLE_CONNECTIONS > 0)); then
    first=1
    for alpn in $IDLE_ALPN; do
        # A fresh process for each figure: one that has held 10,000
        # connections keeps much of that memory (allocator, kernel), and the
        # next figure would start from there.
        if ((!first)); then
            stop "$credgate_pid" TERM
            stop "$nginx_pid" TERM
            start_credgate
            start_nginx
            nginx_pids="$nginx_pid $(pgrep -P "$nginx_pid" | paste -sd ' ' -)"
        fi
        first=0
        for proxy in credgate nginx; do
            case $proxy in
            credgate) read -r before held established <<<"$(idle_rss credgate "$credgate_port" "$credgate_pid" "$alpn")" ;;
            nginx) read -r before held established <<<"$(idle_rss nginx "$nginx_port" "$nginx_pids" "$alpn")" ;;
            esac
            per=$(awk -v b="$before" -v h="$held" -v n="$established" 'BEGIN { if (n > 0) printf "%.1f", (h - b) / n; else print "?" }')
            memory_rows+=("| $proxy | $alpn | $((before / 1024)) | $((held / 1024)) | $established | $per |")
        done
    done
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

describe() {
    local h1=wrk
    ((RATE > 0)) && h1="h2load --h1, $RATE/s"
    case $1 in
    get-h1) echo "GET /, HTTP/1.1 ($h1)" ;;
    get-h2) echo "GET /, HTTP/2 (h2load -m1$( ((RATE > 0)) && echo ", $RATE/s"))" ;;
    login-h1) echo "POST /login, HTTP/1.1 ($h1), credgate inspects, nginx passes" ;;
    login-new-tls) echo "POST /login, new TLS connection each (wrk, Connection: close)" ;;
    esac
}

cat <<EOF
### credgate vs nginx: CPU per request (${ROUNDS} round(s), medians)

$(nproc) CPUs; proxy pinned to CPU $PROXY_CPU, load generator and shop to CPU $LOAD_CPU.
$CONNECTIONS connections, ${DURATION}s measured after ${WARMUP}s warm-up, per workload and proxy$( ((RATE > 0)) && echo "; keep-alive workloads paced by h2load at $RATE requests/s in total").
credgate $build, $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //') (worker_processes 1), $(wrk -v 2>&1 | head -1 | awk '{ print "wrk " $2 }'), $(h2load --version | awk '{ print $2 }').
TLS: credgate $tls_credgate; nginx $tls_nginx.
Started $started UTC; load average before $load_before, after $load_after.

| workload | credgate µs/req | nginx µs/req | credgate / nginx | credgate p99 ms | nginx p99 ms | credgate req/s | nginx req/s | load CPU busy % (credgate, nginx) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
saturated=()
for workload in $WORKLOADS; do
    c=$(median ${cpu[$workload:credgate]})
    n=$(median ${cpu[$workload:nginx]})
    ratio=$(awk -v c="$c" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", c / n; else print "?" }')
    busy_c=$(median ${load_busy[$workload:credgate]})
    busy_n=$(median ${load_busy[$workload:nginx]})
    printf '| %s | %s | %s | **%s** | %s | %s | %s | %s | %s, %s |\n' "$(describe "$workload")" "$c" "$n" "$ratio" \
        "$(median ${p99[$workload:credgate]})" "$(median ${p99[$workload:nginx]})" \
        "$(median ${rps[$workload:credgate]})" "$(median ${rps[$workload:nginx]})" "$busy_c" "$busy_n"
    if awk -v c="$busy_c" -v n="$busy_n" 'BEGIN { exit !(c >= 95 || n >= 95) }'; then
        saturated+=("$workload")
    fi
done
if ((${#saturated[@]} > 0)); then
    cat <<EOF

The load generator's core was 95 % busy or more on: ${saturated[*]}. There the
load generator (and the shop beside it), not the proxy, sets the pace, and the
p99 it reports includes its own queue. Compare CPU per request there, and
latency at a pace that leaves the load generator room (RATE, or fewer
CONNECTIONS).
EOF
fi
cat <<EOF

Of that, in user space and in the kernel (medians, µs/req; on loopback the
kernel's share includes delivering each sent segment to the receiving socket):

| workload | credgate user | credgate kernel | nginx user | nginx kernel |
|---|---:|---:|---:|---:|
EOF
for workload in $WORKLOADS; do
    row="| $workload"
    for proxy in credgate nginx; do
        u=$(median ${user[$workload:$proxy]})
        k=$(awk -v c="$(median ${cpu[$workload:$proxy]})" -v u="$u" 'BEGIN { printf "%.1f", c - u }')
        row+=" | $u | $k"
    done
    echo "$row |"
done
if ((ROUNDS > 1)); then
    printf '\nPer round, µs/req (credgate | nginx):\n\n'
    for workload in $WORKLOADS; do
        printf -- '- %s: %s| %s\n' "$workload" "${cpu[$workload:credgate]}" "${cpu[$workload:nginx]}"
    done
fi
if ((${#memory_rows[@]} > 0)); then
    cat <<EOF

### Memory: $IDLE_CONNECTIONS idle keep-alive TLS connections (one GET each, then silence)

| proxy | ALPN | RSS idle MiB | RSS holding them MiB | connections established | KiB per connection |
|---|---|---:|---:|---:|---:|
$(printf '%s\n' "${memory_rows[@]}")
EOF
fi

# What the servers logged (both at level warn), one line per distinct message
# with its count.
notes=()
while read -r count message; do
    notes+=("credgate logged ${count}×: $message")
done < <(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$tmp/credgate.log" | sort | uniq -c)
while read -r count message; do
    notes+=("nginx logged ${count}×: $message")
done < <(grep -v '\[notice\]' "$tmp/nginx/error.log" | sed 's/^[0-9/]* [0-9:]* //' | sort | uniq -c)
if ((${#notes[@]} > 0)); then
    printf '\nServer logs:\n'
    printf -- '- %s\n' "${notes[@]}"
fi
# Errors or non-2xx responses make the numbers meaningless: fail.
if ((${#problems[@]} > 0)); then
    printf '\nProblems:\n'
    printf -- '- %s\n' "${problems[@]}"
    exit 1
fi
