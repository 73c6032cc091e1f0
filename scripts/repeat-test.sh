#!/usr/bin/env bash
# Runs one end-to-end test over and over, in parallel loops, with CPU hogs
# beside them: a rare failure in CI (a race that needs a slow moment) shows
# here in minutes. Every loop stops by itself after SECONDS.
#
#   scripts/repeat-test.sh <test-name-filter> [LOOPS=6] [SECONDS=300] [HOGS=2]
#
# Prints how many runs passed and failed, and keeps each failed run's
# output (the skipped events and the servers' last log lines) in $OUT
# (default /tmp/repeat-test). Each run is cut after $RUN_TIMEOUT seconds
# (default 120: one test; a filter matching many tests needs more, and a
# cut run counts as a failure). Builds the binaries first; do not edit sources while
# it runs (the tests refuse a server binary older than its sources).
set -euo pipefail
filter=${1:?usage: scripts/repeat-test.sh <test-name-filter> [LOOPS] [SECONDS] [HOGS]}
loops=${2:-6}
seconds=${3:-300}
hogs=${4:-2}
out=${OUT:-/tmp/repeat-test}
run_timeout=${RUN_TIMEOUT:-120}
cd "$(dirname "$0")/.."
cargo build --workspace --bins
bin=$(cargo test -p integration --test e2e --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "e2e" and m.get("executable"):
        print(m["executable"])')
rm -rf "$out" && mkdir -p "$out"
end=$((SECONDS + seconds))
for j in $(seq 1 "$loops"); do
    (
        n=0
        while [ $SECONDS -lt $end ]; do
            n=$((n + 1))
            if RTTP_NETNS=${RTTP_NETNS:-1} timeout "$run_timeout" "$bin" "$filter" >"$out/run.$j" 2>&1 &&
                grep -q "test result: ok. [1-9]" "$out/run.$j"; then
                echo ok
            else
                echo FAIL
                cp "$out/run.$j" "$out/fail.$j.$n"
            fi
        done >"$out/loop.$j"
    ) &
done
for _ in $(seq 1 "$hogs"); do
    timeout "$seconds" sh -c 'while :; do :; done' &
done
wait
echo "$filter: $(cat "$out"/loop.* | grep -c '^ok' || true) passed, $(cat "$out"/loop.* | grep -c FAIL || true) failed; failed runs kept in $out (fail.*)"
