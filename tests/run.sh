#!/bin/bash
# Runs GoogleTest binaries, streams their output, and ends with one line:
# "N passed, N failed" (", N skipped" when some were). Counts test cases, not
# binaries; a binary that is missing, crashes or hangs counts as failures too.
# Exit status: 0 when nothing failed, 1 when something did, 2 on misuse or
# when a privileged tier is asked for without root.
#
#   tests/run.sh build/tests/unit_tests build/tests/bpf_tests ...
#   SLUICE_TEST_TIMEOUT=300 GTEST_FILTER='Gcra*' tests/run.sh build/tests/unit_tests
set -uo pipefail

readonly BPFFS=/sys/fs/bpf
# Per binary, so that one hung test cannot stall CI past its deadline.
readonly TIMEOUT="${SLUICE_TEST_TIMEOUT:-600}"

if [ $# -eq 0 ]; then
    echo "usage: $0 TEST_BINARY..." >&2
    exit 2
fi

# Binaries named unit* need no privileges; every other tier loads BPF
# programs, creates namespaces and pins maps.
needs_root=0
for bin in "$@"; do
    case "$(basename -- "$bin")" in
        unit*) ;;
        *) needs_root=1 ;;
    esac
done

if [ "$needs_root" -eq 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests need root (CAP_BPF, CAP_NET_ADMIN): run as root" >&2
        exit 2
    fi
    if ! awk -v d="$BPFFS" '$2 == d && $3 == "bpf" { found = 1 } END { exit !found }' /proc/mounts; then
        echo "== mounting bpffs at $BPFFS"
        mkdir -p "$BPFFS"
        if ! mount -t bpf bpf "$BPFFS"; then
            echo "cannot mount bpffs at $BPFFS: the bpf and integration tests need it" >&2
            exit 1
        fi
    fi
fi

export GTEST_COLOR=no

log=$(mktemp)
trap 'rm -f "$log"' EXIT

passed=0
failed=0
skipped=0

# Lines gtest prints once per finished test: "[  FAILED  ] Suite.Name (3 ms)".
# The summary at the end of a run repeats names without the time; those are
# not counted.
count() {
    grep -cE "^\[$1\] .* \([0-9]+ ms\)\$" "$log"
}

for bin in "$@"; do
    echo "== $bin"
    if [ ! -x "$bin" ] || [ -d "$bin" ]; then
        echo "== $bin: missing or not executable: counted as 1 failure"
        failed=$((failed + 1))
        continue
    fi

    timeout -k 10 "$TIMEOUT" "$bin" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}

    ok=$(count '       OK ')
    bad=$(count '  FAILED  ')
    skip=$(count '  SKIPPED ')
    started=$(grep -c '^\[ RUN      \] ' "$log")
    unfinished=$((started - ok - bad - skip))
    [ "$unfinished" -lt 0 ] && unfinished=0

    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "== $bin: timed out after ${TIMEOUT}s"
    elif [ "$rc" -gt 128 ]; then
        echo "== $bin: killed by signal $((rc - 128))"
    fi
    # A test that started and never finished crashed or hung the binary. A
    # binary that failed without naming a failing test (crash outside a
    # test, bad arguments) still counts once.
    if [ "$unfinished" -gt 0 ]; then
        echo "== $bin: $unfinished test(s) started but never finished: counted as failed"
        bad=$((bad + unfinished))
    fi
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        echo "== $bin: exited with status $rc without a failing test: counted as 1 failure"
        bad=1
    fi

    passed=$((passed + ok))
    failed=$((failed + bad))
    skipped=$((skipped + skip))
done

summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
