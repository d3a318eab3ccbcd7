#!/usr/bin/env bash
# Memory per idle keep-alive client connection, plain and over TLS, sluice
# against nginx on the same machine (bench/idle_conns.js does the counting).
#
#   bench/idle_conns.sh            # about 30 s; BENCH_IDLE_N connections (2000) per run
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${BENCH_IDLE_N:-2000}
ulimit -n $((N * 2 + 1024))
start_all
sleep 1
for run in "sluice plain $SL_PORT $SL_PID" "sluice tls $SL_TLS_PORT $SL_PID" \
    "nginx plain $NGX_PORT $NGX_PID" "nginx tls $NGX_TLS_PORT $NGX_PID"; do
    set -- $run
    printf '%-6s ' "$1"
    node "$BENCH_DIR/idle_conns.js" "$4" "$3" "$2" "$N"
    sleep 1 # let the proxy close them before the next run
done
