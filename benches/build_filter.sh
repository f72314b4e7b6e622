#!/usr/bin/env bash
# Throughput of the real `credgate build-filter` on a generated combo list,
# and the false-positive rate the filter achieves on pairs it never saw.
#
#   benches/build_filter.sh                         # N=10000000 FP_RATE=0.001 PROBES=1000000
#   N=1000000 FP_RATE=0.00001 benches/build_filter.sh
#
# Builds twice: sized by --expected-items (one pass) and by counting the
# input's lines first (two passes). The corpus and the filters live in a
# temporary directory that is removed on exit. Needs awk.
set -euo pipefail

N=${N:-10000000}
FP_RATE=${FP_RATE:-0.001}
PROBES=${PROBES:-1000000}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
credgate=$target_dir/release/credgate
fp_rate=$target_dir/release/examples/fp_rate

log() { printf '==> %s\n' "$*" >&2; }

log "building credgate (release)"
(cd "$repo" && cargo build --release --locked --bin credgate --example fp_rate >&2)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log "generating $N pairs"
awk -v n="$N" 'BEGIN {
    for (i = 0; i < n; i++) printf "user%d@example.com:pw-%d-%x\n", i, i, (i * 2654435761) % 4294967296
}' > "$work/combo.txt"
ls -l "$work/combo.txt" >&2

build() {
    local start end
    start=$(date +%s.%N)
    "$credgate" build-filter --kind pairs --input "$work/combo.txt" --output "$work/pairs.cgf" \
        --fp-rate "$FP_RATE" "$@" 2>/dev/null
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "  wall:       %.2f s (whole process)\n", e - s }'
}

log "build-filter --expected-items $N (one pass)"
build --expected-items "$N"
log "build-filter, sized by counting lines (two passes)"
build

log "false positives on $PROBES absent pairs"
"$fp_rate" "$work/pairs.cgf" "$PROBES"
