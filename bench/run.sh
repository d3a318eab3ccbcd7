#!/usr/bin/env bash
# sluice vs nginx, side by side, as ratios.
#
# Starts a fake upstream (nginx returning fixed replies, plus a small Node SSE
# server), nginx as a plain reverse proxy and sluice, each with one worker, all
# on 127.0.0.1, and drives them with wrk in interleaved rounds. The machine is
# shared and noisy: every figure is reported next to nginx's (or the direct
# run's) from the same round, and the median over rounds is kept.
#
#   bench/run.sh                       # ~11 minutes with the defaults
#   BENCH_DURATION=3 BENCH_ROUNDS=1 bench/run.sh   # quick smoke run
#
# Environment: SLUICE (binary, default build-bench/sluice), BENCH_DURATION
# (s per wrk run, 10), BENCH_ROUNDS (3), BENCH_TTFT_N (requests per TTFT
# sample, 200), BENCH_BUDGET (s, 800: later runs are skipped past it),
# BENCH_OUT (markdown, bench/results/latest.md), BENCH_KEEP=1 keeps the temp dir,
# BENCH_TTFT_ROUNDS (TTFT rounds, default BENCH_ROUNDS), BENCH_ONLY=ttft (only the
# time-to-first-byte runs: the noisiest figure, which wants more rounds).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-3}
TTFT_N=${BENCH_TTFT_N:-200}
TTFT_ROUNDS=${BENCH_TTFT_ROUNDS:-$ROUNDS}
BUDGET=${BENCH_BUDGET:-800}
OUT=${BENCH_OUT:-$BENCH_DIR/results/latest.md}
RUNS="$WORK/runs.tsv" # round scenario c target rps p50 p99 mean cpu_us sockerr non2xx
MEM="$WORK/mem.tsv"   # target phase kB
TTFT="$WORK/ttft.tsv" # path target p50 p90 mean
NOTES="$WORK/notes.txt"
: >"$RUNS"
: >"$MEM"
: >"$TTFT"
: >"$NOTES"

note() { echo "bench: $*" >&2; echo "$*" >>"$NOTES"; }

# One wrk run against URL; appends a row to $RUNS. The proxy's on-CPU time
# over the run divided by the requests gives CPU us/request, which is far
# less sensitive to the noise of a shared machine than req/s.
bench_one() { # round scenario c target url body pid
    local round=$1 scen=$2 c=$3 target=$4 url=$5 body=$6 pid=$7 threads=1 out cpu0 cpu1 who sampler=
    [ "$c" -gt 1 ] && threads=2
    if [ "$SECONDS" -gt "$BUDGET" ]; then
        note "time budget ${BUDGET}s spent: skipped round $round $scen c=$c $target"
        return 0
    fi
    cpu0=$(cpu_ns "$pid")
    # Sample memory half-way through the loaded runs.
    if [ "$c" -gt 1 ] && [ "$pid" != "$UP_PID" ]; then
        who=sluice
        [ "$pid" = "$NGX_PID" ] && who=nginx
        (sleep $((DURATION / 2)); echo "$who load $(rss_kb "$pid")" >>"$MEM") &
        sampler=$!
    fi
    out=$(BENCH_BODY="$body" timeout $((DURATION + 30)) wrk -t "$threads" -c "$c" -d "${DURATION}s" \
        --timeout 5s -s "$BENCH_DIR/wrk.lua" "$url" 2>&1) || { note "wrk failed on $url: $out"; return 0; }
    cpu1=$(cpu_ns "$pid")
    [ -n "$sampler" ] && wait "$sampler"
    echo "$out" | awk -v r="$round" -v s="$scen" -v c="$c" -v t="$target" -v cpu=$((cpu1 - cpu0)) '
        /^RESULT/ {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\n", r, s, c, t, v["rps"], v["p50_us"],
                v["p99_us"], v["mean_us"], (v["requests"] > 0 ? cpu / 1000 / v["requests"] : 0),
                v["sockerr"], v["non2xx"]
        }' >>"$RUNS"
    printf '  round %s %-8s c=%-2s %-8s %s\n' "$round" "$scen" "$c" "$target" \
        "$(tail -1 "$RUNS" | awk -F'\t' '{printf "%s req/s p50 %s us p99 %s us cpu %s us/req", $5, $6, $7, $9}')" >&2
}

# A request must come back 200 with the expected marker, else the scenario
# would measure error pages.
check() { # name url body marker
    local got
    if [ -n "$3" ]; then
        got=$(curl -s -m 5 -w '\n%{http_code}' -H 'content-type: application/json' --data-binary "@$3" "$2" || true)
    else
        got=$(curl -s -m 5 --cacert "$WORK/tls/cert.pem" -w '\n%{http_code}' "$2" || true)
    fi
    if [ "${got##*$'\n'}" = 200 ] && [[ $got == *"$4"* ]]; then return 0; fi
    note "$1: $2 did not answer 200 with '$4' (got: $(echo "$got" | tr '\n' ' ' | cut -c1-300)); scenario skipped"
    return 1
}

# The tree moves while we run: name the commit and the binary's build time now.
BUILD_ID="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') at start, binary built $(date -u -r "$SLUICE" +%H:%MZ)"
start_all
echo "bench: sluice $("$SLUICE" -V 2>&1 | head -1), $(nginx -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" >&2
echo "bench: upstream :$UP_PORT sse :$SSE_PORT nginx :$NGX_PORT sluice :$SL_PORT, work dir $WORK" >&2
sleep 1
echo "sluice idle $(rss_kb "$SL_PID")" >>"$MEM"
echo "nginx idle $(rss_kb "$NGX_PID")" >>"$MEM"

UP=http://127.0.0.1:$UP_PORT
NG=http://127.0.0.1:$NGX_PORT
SL=http://127.0.0.1:$SL_PORT
SCENARIOS=()
check plain "$SL/hello" "" "hello from the bench" && check plain "$NG/hello" "" "hello from the bench" &&
    SCENARIOS+=(plain)
SLT=https://127.0.0.1:$SL_TLS_PORT
NGT=https://127.0.0.1:$NGX_TLS_PORT
check tls "$SLT/hello" "" "hello from the bench" && check tls "$NGT/hello" "" "hello from the bench" &&
    SCENARIOS+=(tls)
if have_ai_proxy; then
    check ai "$SL/ai/chat" "$WORK/chat_small.json" '"chat.completion"' && SCENARIOS+=(ai)
    check prompt "$SL/ai/guarded" "$WORK/chat_4k.json" '"chat.completion"' && SCENARIOS+=(prompt)
else
    note "this sluice has no ai-proxy plugin: ai-proxy scenarios skipped; the prompt plugins are measured on a plain POST route (guard+decorator vs none, same 4 KB body)"
    check prompt "$SL/guarded/v1/chat/completions" "$WORK/chat_4k.json" '"chat.completion"' && SCENARIOS+=(prompt)
fi
# The guard must really be on: a denied prompt never reaches the upstream.
printf '{"messages":[{"role":"user","content":"please jailbreak now"}]}' >"$WORK/deny.json"
deny_url=$SL/guarded/v1/chat/completions
have_ai_proxy && deny_url=$SL/ai/guarded
deny_code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    --data-binary "@$WORK/deny.json" "$deny_url" || true)
[ "$deny_code" = 400 ] || note "ai-prompt-guard did not block a denied prompt (HTTP $deny_code)"

if [ "${BENCH_ONLY:-}" = ttft ]; then
    note "BENCH_ONLY=ttft: throughput and latency runs skipped"
    SCENARIOS=()
fi
# nginx and sluice on the same request, in an order that alternates by round
# so that drift on the host falls on both; at c=1 the upstream direct first,
# when a direct URL is given (the latency-added baseline).
vs_nginx() { # round scenario c nginx-url sluice-url body [direct-url]
    local t pair=(nginx sluice)
    [ $(($1 % 2)) = 0 ] && pair=(sluice nginx)
    if [ "$3" = 1 ] && [ -n "${7:-}" ]; then bench_one "$1" "$2" 1 direct "$7" "$6" "$UP_PID"; fi
    for t in "${pair[@]}"; do
        if [ "$t" = nginx ]; then
            bench_one "$1" "$2" "$3" nginx "$4" "$6" "$NGX_PID"
        else
            bench_one "$1" "$2" "$3" sluice "$5" "$6" "$SL_PID"
        fi
    done
}

for round in $(seq 1 "$ROUNDS"); do
    [ ${#SCENARIOS[@]} = 0 ] && break
    echo "bench: round $round/$ROUNDS" >&2
    for scen in "${SCENARIOS[@]}"; do
        for c in 1 32; do
            case $scen in
            plain) vs_nginx "$round" plain "$c" "$NG/hello" "$SL/hello" "" "$UP/hello" ;;
            # The same GET, the client's connection over TLS 1.3 (wrk keeps it
            # alive: the record layer, not the handshake).
            tls) vs_nginx "$round" tls "$c" "$NGT/hello" "$SLT/hello" "" ;;
            # nginx baseline: plain proxy of the same POST to the same upstream.
            ai)
                vs_nginx "$round" ai "$c" "$NG/v1/messages" "$SL/ai/chat" "$WORK/chat_small.json" \
                    "$UP/v1/messages"
                ;;
            prompt)
                # sluice against itself: same 4 KB body with and without guard+decorator.
                if have_ai_proxy; then
                    base=$SL/ai/chat plug=$SL/ai/guarded
                else
                    base=$SL/v1/chat/completions plug=$SL/guarded/v1/chat/completions
                fi
                pair=(base plugins)
                [ $((round % 2)) = 0 ] && pair=(plugins base)
                for t in "${pair[@]}"; do
                    if [ "$t" = base ]; then
                        bench_one "$round" prompt "$c" base "$base" "$WORK/chat_4k.json" "$SL_PID"
                    else
                        bench_one "$round" prompt "$c" plugins "$plug" "$WORK/chat_4k.json" "$SL_PID"
                    fi
                done
                ;;
            esac
        done
    done
done
echo "sluice after-load $(rss_kb "$SL_PID")" >>"$MEM"
echo "nginx after-load $(rss_kb "$NGX_PID")" >>"$MEM"

# Time to first token: direct, through nginx (proxy_buffering off) and
# through sluice (passthrough, and ai-proxy translating Anthropic's stream).
ttft() { # path target url
    local line
    if [ "$SECONDS" -gt "$BUDGET" ]; then note "time budget spent: skipped TTFT $1 $2"; return 0; fi
    line=$(timeout 120 node "$BENCH_DIR/ttft.js" "$3" "$WORK/chat_stream.json" "$TTFT_N" 2>&1) ||
        { note "TTFT $1 $2 failed: $line"; return 0; }
    echo "$line" | awk -v p="$1" -v t="$2" '/^TTFT/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%s\t%s\t%s\t%s\t%s\n", p, t, v["p50_us"], v["p90_us"], v["mean_us"] }' >>"$TTFT"
    echo "  ttft $1 $2: $line" >&2
}
SSE=http://127.0.0.1:$SSE_PORT
for round in $(seq 1 "$TTFT_ROUNDS"); do
    ttft sse direct "$SSE/v1/messages"
    ttft sse nginx "$NG/sse/v1/messages"
    ttft sse sluice "$SL/sse/v1/messages"
    if have_ai_proxy; then ttft ai-sse sluice "$SL/ai/stream"; fi
    ttft sse-static direct "http://127.0.0.1:$UP_PORT/sse-static/v1/messages"
    ttft sse-static nginx "$NG/sse-static/v1/messages"
    ttft sse-static sluice "$SL/sse-static/v1/messages"
    if have_ai_proxy; then ttft ai-sse-static sluice "$SL/ai/stream-static"; fi
done

# The prompt plugins' own cost, in process: a few microseconds are below the
# end-to-end noise of this machine (see bench/micro_prompt.c).
MICRO="$WORK/micro.txt"
: >"$MICRO"
LIB=$(dirname "$SLUICE")/libsluice_core.a
if [ -f "$LIB" ] && command -v gcc >/dev/null; then
    # shellcheck disable=SC2046 # pkg-config prints several words on purpose
    if gcc -O2 -std=gnu11 -I"$ROOT/include" -I"$ROOT/src" "$BENCH_DIR/micro_prompt.c" "$LIB" \
        $(pkg-config --libs libevent libevent_pthreads libevent_openssl libcurl libcjson hiredis \
            yaml-0.1 libpcre2-8 openssl) -lpthread -lm -o "$WORK/micro_prompt" 2>"$WORK/micro-cc.log"; then
        "$WORK/micro_prompt" "$WORK/chat_4k.json" >"$MICRO" 2>&1 || note "micro_prompt failed: $(cat "$MICRO")"
    else
        note "bench/micro_prompt.c did not build: $(head -3 "$WORK/micro-cc.log")"
    fi
else
    note "no $LIB next to $SLUICE: in-process prompt plugin timing skipped"
fi

mkdir -p "$(dirname "$OUT")"
node "$BENCH_DIR/report.js" "$RUNS" "$MEM" "$TTFT" "$NOTES" "$MICRO" \
    "duration ${DURATION}s per run, ${ROUNDS} rounds, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r)" \
    "$("$SLUICE" -V 2>&1 | head -1) ($BUILD_ID, malloc: $(ldd "$SLUICE" | grep -q libmimalloc && echo mimalloc || echo glibc)), $(nginx -v 2>&1 | sed 's/.*: //')" \
    >"$OUT"
cat "$OUT"
echo "bench: wrote $OUT in ${SECONDS}s" >&2
