#!/usr/bin/env bash
# Where sluice spends its time: the same setup as run.sh, wrk at c=32 on one
# path while `perf record` samples sluice (cpu-clock: this VM has no hardware
# counters) and `perf stat` counts its context switches and CPU time.
#
#   bench/profile.sh [plain|ai|prompt ...]   # default: every path available
#
# Writes bench/results/profile-PATH.txt (flat profile by symbol and by shared
# object, perf stat, requests served). BENCH_PROFILE_SECONDS (default 10).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v perf >/dev/null || die "perf is not installed (apt-get install linux-perf)"

SECS=${BENCH_PROFILE_SECONDS:-10}
OUTDIR=${BENCH_PROFILE_OUT:-$BENCH_DIR/results}
mkdir -p "$OUTDIR"
start_all
SL=http://127.0.0.1:$SL_PORT

paths=("$@")
if [ ${#paths[@]} = 0 ]; then
    paths=(plain prompt)
    have_ai_proxy && paths=(plain ai prompt)
fi

# Syscalls per request, sluice vs the nginx worker, on the same path and
# load (strace slows both alike; only the counts are used, not the times).
# On this VM every kernel entry is expensive, so this count explains most of
# the difference in CPU per request.
syscalls() { # path url body
    command -v strace >/dev/null || { echo "(strace not installed)" >"$WORK/strace-$1.txt"; return 0; }
    local ngx_url=http://127.0.0.1:$NGX_PORT/hello who pid url res
    [ "$1" != plain ] && ngx_url=http://127.0.0.1:$NGX_PORT/v1/messages
    : >"$WORK/strace-$1.txt"
    for who in sluice nginx; do
        if [ "$who" = sluice ]; then pid=$SL_PID url=$2; else pid=$(cat "/proc/$NGX_PID/task/$NGX_PID/children") url=$ngx_url; fi
        strace -c -f -q -p "$pid" -o "$WORK/strace-$1-$who.raw" &
        local tr=$!
        sleep 1
        res=$(BENCH_BODY="$3" timeout 60 wrk -t1 -c8 -d3s -s "$BENCH_DIR/wrk.lua" "$url" | grep RESULT)
        sleep 0.5
        kill -INT "$tr"
        wait "$tr" || true
        local n=${res#*requests=}
        n=${n%% *}
        awk -v who="$who" -v n="$n" '
            $NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $1 ~ /^[0-9.]+$/ && NF >= 5 { calls = ($(NF-1) ~ /^[0-9]+$/ && NF == 6) ? $(NF-2) : $(NF-1); tot += calls; per[$NF] = calls }
            END {
                printf "%s: %d requests, %.2f syscalls/request:", who, n, tot / n
                for (k in per) if (per[k] / n >= 0.05) printf " %s=%.2f", k, per[k] / n
                printf "\n"
            }' "$WORK/strace-$1-$who.raw" >>"$WORK/strace-$1.txt"
    done
}

# The text report of one path; pipefail off, `head` closes pipes early.
report() { # path url wrk-result
    local p=$1 url=$2 res=$3
    set +o pipefail
    {
        echo "# sluice profile: $p path, wrk -t2 -c32 -d${SECS}s $url"
        echo "# $res"
        echo "# $("$SLUICE" -V 2>&1 | head -1) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), binary built $(date -u -r "$SLUICE" +%H:%MZ)), $(nproc) CPUs, $(uname -r)"
        echo
        echo "## perf stat (whole process, all threads)"
        grep -E 'task-clock|context-switches|migrations|page-faults|seconds time' "$WORK/perf-stat-$p.txt"
        echo
        echo "## by shared object (self)"
        perf report -i "$WORK/perf-$p.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -E '^ +[0-9]' | head -15
        echo
        echo "## by symbol (self), top 45"
        perf report -i "$WORK/perf-$p.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -45
        echo
        echo "## inclusive (children), sluice and library entry points, top 60"
        perf report -i "$WORK/perf-$p.data" --stdio --children --sort symbol -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -60
        echo
        echo "## inclusive, sluice's own code and cJSON/PCRE2 (what our code costs, callees included)"
        perf report -i "$WORK/perf-$p.data" --stdio --children --sort symbol -g none 2>/dev/null |
            grep -E '^ +[0-9]' | grep -E '\] (gw_|llm_|anthropic|openai|prompt_|proxy_|cJSON|pcre2|on_upstream|header_cb|write_cb|send_chunk|setup_transfer|build_upstream|start_upstream|watch_client|socket_cb|timer_cb|check_done)' |
            head -40
        echo
        echo "## syscalls per request (strace -c -f, wrk -t1 -c8 -d3s, sluice vs the nginx worker)"
        cat "$WORK/strace-$p.txt"
    }
    set -o pipefail
}

for p in "${paths[@]}"; do
    body=
    case $p in
    plain) url=$SL/hello ;;
    ai) url=$SL/ai/chat body=$WORK/chat_small.json ;;
    prompt)
        body=$WORK/chat_4k.json
        url=$SL/guarded/v1/chat/completions
        have_ai_proxy && url=$SL/ai/guarded
        ;;
    *) die "unknown path $p (plain, ai, prompt)" ;;
    esac
    out=$OUTDIR/profile-$p.txt
    echo "bench: profiling $p ($url) for ${SECS}s" >&2
    perf record -q -F 1999 -e cpu-clock --call-graph dwarf,16384 -p "$SL_PID" -o "$WORK/perf-$p.data" \
        -- sleep $((SECS + 1)) 2>"$WORK/perf-record-$p.log" &
    rec=$!
    perf stat -e task-clock,context-switches,cpu-migrations,page-faults -p "$SL_PID" \
        -o "$WORK/perf-stat-$p.txt" -- sleep $((SECS + 1)) &
    st=$!
    sleep 0.5
    res=$(BENCH_BODY="$body" timeout $((SECS + 30)) wrk -t2 -c32 -d"${SECS}s" -s "$BENCH_DIR/wrk.lua" "$url" | grep RESULT)
    wait "$rec" "$st"
    syscalls "$p" "$url" "$body"
    report "$p" "$url" "$res" >"$out"
    echo "bench: wrote $out" >&2
done
