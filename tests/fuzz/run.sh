#!/bin/bash
# Runs each libFuzzer binary for SECONDS, side by side, starting from its
# seed corpus tests/fuzz/corpus/NAME (and tests/fuzz/NAME.dict when there is
# one), and prints one line per fuzzer:
#   "fuzz rate_fuzz: ok, 60 s, 812345 runs, 653 coverage edges, corpus 310"
#   "fuzz config_fuzz: FAILED (invariant violated: ...), reproducer build-san/fuzz/artifacts/..."
# The seed corpus is read, never written: new inputs go to
# build-san/fuzz/corpus/NAME, kept between runs. A reproducer runs again with
# `BINARY FILE`. Exit status: 0 when every fuzzer ran clean, 1 when one
# crashed, leaked, broke an invariant or hung, 2 on misuse.
#
#   tests/fuzz/run.sh 60 build-san/fuzz/rate_fuzz build-san/fuzz/config_fuzz
set -uo pipefail

if [ $# -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 SECONDS FUZZER..." >&2
    exit 2
fi
seconds=$1
shift

root=$(cd "$(dirname "$0")/../.." && pwd)
# One input taking this long is a hang (the grammars are linear).
readonly INPUT_TIMEOUT_S=10
readonly RSS_LIMIT_MB=2048
# Beyond -max_total_time: startup, the seed corpus, and the final report.
readonly GRACE_S=120

# One fuzzer: its result line goes to $out/NAME.result, its output to NAME.log.
fuzzOne() {
    local bin=$1 name out seeds corpus artifacts log result rc dict=()
    name=$(basename -- "$bin")
    out=$(dirname -- "$bin")
    result="$out/$name.result"
    if [ ! -x "$bin" ]; then
        echo "fuzz $name: FAILED (missing: run make fuzz)" >"$result"
        return
    fi
    seeds="$root/tests/fuzz/corpus/${name%_fuzz}"
    corpus="$out/corpus/$name"
    artifacts="$out/artifacts"
    log="$out/$name.log"
    mkdir -p "$corpus" "$artifacts"
    [ -f "$root/tests/fuzz/${name%_fuzz}.dict" ] && dict=("-dict=$root/tests/fuzz/${name%_fuzz}.dict")

    # The first corpus directory receives new inputs; the seeds are only read.
    timeout -k 10 $((seconds + GRACE_S)) "$bin" "${dict[@]}" \
        -max_total_time="$seconds" -timeout="$INPUT_TIMEOUT_S" -rss_limit_mb="$RSS_LIMIT_MB" \
        -artifact_prefix="$artifacts/$name-" -print_final_stats=1 \
        "$corpus" "$seeds" >"$log" 2>&1
    rc=$?

    local runs cov size what artifact
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    size=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz $name: ok, $seconds s, ${runs:-?} runs, ${cov:-?} coverage edges, corpus $size" >"$result"
        return
    fi
    # "SUMMARY: AddressSanitizer: heap-buffer-overflow file:line in f",
    # "SUMMARY: libFuzzer: deadly signal", "... timeout", "... out-of-memory".
    what=$(sed -n 's/^SUMMARY: \([A-Za-z]*\): \([a-z -]*[a-z]\).*/\1: \2/p' "$log" | head -1)
    grep -q 'fuzz invariant violated' "$log" &&
        what="invariant violated: $(sed -n 's/^fuzz invariant violated: //p' "$log" | head -1 | cut -c1-160)"
    grep -q 'runtime error:' "$log" &&
        what="undefined behaviour: $(grep -m1 -o '[^ ]*: runtime error:.*' "$log" | cut -c1-160)"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        what="did not stop within $((seconds + GRACE_S)) s"
    fi
    artifact=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | cut -d' ' -f5)
    echo "fuzz $name: FAILED (${what:-exit status $rc})${artifact:+, reproducer $artifact}; log $log" >"$result"
}

# The fuzzers run side by side (each is one process on one core).
pids=()
for bin in "$@"; do
    echo "== $(basename -- "$bin"): ${seconds} s"
    rm -f "$(dirname -- "$bin")/$(basename -- "$bin").result"
    fuzzOne "$bin" &
    pids+=($!)
done
wait "${pids[@]}"

failed=0
for bin in "$@"; do
    result="$(dirname -- "$bin")/$(basename -- "$bin").result"
    line=$(cat "$result" 2>/dev/null || echo "fuzz $(basename -- "$bin"): FAILED (no result)")
    case "$line" in
        *": ok,"*) ;;
        *)
            failed=1
            # What went wrong: the sanitizer's report or the broken invariant.
            log="$(dirname -- "$bin")/$(basename -- "$bin").log"
            [ -f "$log" ] && tail -n 40 "$log"
            ;;
    esac
done
for bin in "$@"; do
    cat "$(dirname -- "$bin")/$(basename -- "$bin").result" 2>/dev/null ||
        echo "fuzz $(basename -- "$bin"): FAILED (no result)"
done
exit "$failed"
