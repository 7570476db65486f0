#!/usr/bin/env bash
# Issue #13's two remaining targets, interleaved: pingpong-100 (CPU/msg) and
# stream-1 (CPU/MB) for twirl serve, tokio current-thread and bare mio, 5 rounds.
# Build first: cargo build --release -p twirl-cli -p twirl-bench
cd "$(dirname "$0")/.."; T=target/release; PORT=7660
run() {
    local name=$1 wl=$2; shift 2
    "$@" >/dev/null 2>&1 &
    local pid=$!; sleep 0.4
    out=$($T/loadgen $wl --addr 127.0.0.1:$PORT --pid $pid --warmup 1 --duration 4 --core 1 | grep RESULT || true)
    kill $pid 2>/dev/null; wait $pid 2>/dev/null
    echo "$name $out"
}
for r in 1 2 3 4 5; do
  for wl in "pp100|--workload pingpong --conns 100 --size 64" "stream1|--workload stream --streams 1 --chunk 16384"; do
    key=${wl%%|*}; args=${wl#*|}
    run "$key twirl" "$args" $T/twirl serve --max-conns 20000 echo@tcp:$PORT
    run "$key tokio" "$args" $T/peer-tokio --addr 127.0.0.1:$PORT
    run "$key mio" "$args" $T/peer-mio --addr 127.0.0.1:$PORT
  done
done
