#!/bin/bash
# A/B two twirl binaries on one loadgen workload, alternating, 4 rounds:
#   bench/ab.sh OLD_TWIRL NEW_TWIRL "--workload stream --streams 1 --chunk 16384"
# The server is pinned to core 0 and the load generator to core 1, as the
# suite does; prints the server's CPU per message (or MB, or connection).
# The deep pipeline: "--workload stream --streams 1 --chunk 16384 --window 8388608".
# loadgen is taken from $CARGO_TARGET_DIR/release if set, else target/release.
set -u
OLD="$1"; NEW="$2"; W="$3"
LOADGEN="${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release/loadgen"
for round in 1 2 3 4; do
  for name in old new; do
    if [ "$name" = old ]; then BIN="$OLD"; else BIN="$NEW"; fi
    PORT=$((20000 + RANDOM % 20000))
    taskset -c 0 "$BIN" serve --max-conns 20000 "echo@tcp:$PORT" >/dev/null 2>&1 &
    PID=$!
    sleep 0.3
    OUT=$("$LOADGEN" $W --addr "127.0.0.1:$PORT" --pid "$PID" --core 1 --warmup 1 --duration 3 2>&1 | tr '\n' ' ')
    kill "$PID"; wait "$PID" 2>/dev/null
    echo "$round $name $(echo "$OUT" | grep -o 'cpu_us_per_[a-z]*=[0-9.]*')"
  done
done
