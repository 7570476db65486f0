#!/usr/bin/env bash
# Reactor per core (issue #18): pingpong-100 against `twirl serve --threads 1`
# and `--threads 2`, tokio current-thread and tokio multi-thread with 2
# workers, ROUNDS interleaved rounds (default 3). Prints one RESULT line per
# run (loadgen's: msgs/s, server CPU µs/msg, ...). Build first:
#   cargo build --release -p twirl-cli -p twirl-bench --bin loadgen --bin peer-tokio
# On a 2-core machine the load generator needs a core too: see README § Performance.
set -euo pipefail
cd "$(dirname "$0")/.."
T=target/release
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-7650}
run() {
    local name=$1; shift
    "$@" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 50); do
        (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
        sleep 0.1
    done
    local out
    out=$($T/loadgen --workload pingpong --addr 127.0.0.1:$PORT --pid $pid --conns 100 --size 64 --warmup 1 --duration 4 | grep RESULT || true)
    kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
    echo "$name $out"
}
for r in $(seq 1 "$ROUNDS"); do
    run twirl-1 $T/twirl serve --threads 1 echo@tcp:$PORT
    run twirl-2 $T/twirl serve --threads 2 echo@tcp:$PORT
    run tokio-ct $T/peer-tokio --addr 127.0.0.1:$PORT
    run tokio-mt2 $T/peer-tokio --addr 127.0.0.1:$PORT --workers 2
done
