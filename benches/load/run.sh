#!/usr/bin/env bash
# Load run against a local wajah-server: POST /v1/verifications at concurrency 4, 16 and 64 for
# DURATION seconds each (default 30), loopback only, bounded. Prints throughput, p50/p99, status
# counts and the server's peak RSS. Needs `make setup` and wrk (Debian package; installed if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-30}
PORT=${PORT:-18181}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p wajah-server
DATA=$(mktemp -d)
export KEY="load-test-key-$RANDOM$RANDOM"
HASH=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)
export NIK=3201011505900001
export SELFIE=testdata/identities/fr_obama/obama2.jpg
WAJAH_LOG=warn ./target/release/wajah-server --listen 127.0.0.1:$PORT --data-dir "$DATA" \
  --api-key-sha256 "$HASH" --workers 2 --rate-per-key 1000000 --burst-per-key 1000000 >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf -H "Authorization: Bearer $KEY" -F nik=$NIK -F photo=@testdata/identities/fr_obama/obama.jpg \
  "http://127.0.0.1:$PORT/v1/enrollments" >/dev/null
# utime + stime of the server, in clock ticks.
server_cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
echo "server: 2 workers, selfie $(basename $SELFIE), ${DURATION}s per level, machine: $(nproc) cores"
for C in 4 16 64; do
  PEAK=0
  ( while kill -0 $SERVER 2>/dev/null; do ps -o rss= -p $SERVER; sleep 1; done ) > "$DATA/rss.$C" &
  WATCH=$!
  echo "--- concurrency $C"
  CPU0=$(server_cpu_ticks)
  wrk -t2 -c$C -d${DURATION}s --timeout 30s -s benches/load/verify.lua "http://127.0.0.1:$PORT/v1/verifications" \
    | tee "$DATA/wrk.$C" | grep -E "^status|requests/s|Non-2xx|Socket errors"
  # Throughput against the CPU limit (cores / per-request core time) is the server's share of the
  # machine's CPU time: (served / duration) * (cpu / served) / cores.
  CPU=$(( $(server_cpu_ticks) - CPU0 ))
  SERVED=$(grep -E "^status 200:" "$DATA/wrk.$C" | awk '{print $3}')
  awk -v t="$CPU" -v hz="$(getconf CLK_TCK)" -v n="${SERVED:-0}" -v d="$DURATION" -v c="$(nproc)" 'BEGIN {
    s = t / hz; printf "server CPU %.1f s for %d answers (%.1f ms each); throughput is %.0f%% of the CPU limit\n",
      s, n, n ? 1000 * s / n : 0, 100 * s / (d * c) }'
  kill $WATCH 2>/dev/null || true
  PEAK=$(sort -n "$DATA/rss.$C" | tail -1)
  echo "server peak RSS: $((PEAK / 1024)) MiB"
done
