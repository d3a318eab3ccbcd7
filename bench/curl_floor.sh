#!/usr/bin/env bash
# The floor libcurl alone imposes on a proxied GET: instructions (callgrind)
# and syscalls (strace) per keep-alive HTTP/1.1 GET, for bench/curl_floor.c
# driving libcurl multi under libevent the way sluice does, against the same
# upstream nginx as run.sh, with no proxy around it.
#
#   bench/curl_floor.sh
#   LD_LIBRARY_PATH=DIR bench/curl_floor.sh   # another libcurl build, e.g. a
#                                            # backports .deb unpacked in DIR
#
# Every figure is measured twice, at N and at N0 requests, and the honest
# per-request figure is the difference over (N - N0): it leaves out process
# start-up (dynamic linking, curl_global_init, the one connect). Total/N,
# start-up included, is printed next to it.
#
# Then CPU time, the unit throughput is bought in: the on-CPU microseconds a
# GET costs libcurl alone (curlu mode, C lanes at once, no valgrind), beside
# the microseconds nginx spends on a whole proxied GET (client side and
# upstream side) under wrk at the same C, in alternating rounds. Where the
# first is the larger, no proxy built on libcurl can match nginx's req/s at
# that C on this machine, whatever the rest of it costs.
#
# Environment: CURL_FLOOR_N (2000), CURL_FLOOR_N0 (200), CURL_FLOOR_CPU_N
# (GETs per CPU run, 100000), CURL_FLOOR_ROUNDS (3), CURL_FLOOR_SECONDS (wrk
# run, 5), CURL_FLOOR_ONLY=cpu (only the CPU time part), BENCH_KEEP=1 keeps
# the temp dir (callgrind and strace outputs).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${CURL_FLOOR_N:-2000}
N0=${CURL_FLOOR_N0:-200}
[ "$N" -gt "$N0" ] || die "CURL_FLOOR_N ($N) must be larger than CURL_FLOOR_N0 ($N0)"
command -v valgrind >/dev/null || die "valgrind is not installed"
command -v strace >/dev/null || die "strace is not installed"

BIN=$WORK/curl_floor
gcc -O2 -Wall -Wextra -Werror "$BENCH_DIR/curl_floor.c" -lcurl -levent -o "$BIN" ||
    die "could not build curl_floor (needs libcurl4-openssl-dev, libevent-dev)"

# shellcheck disable=SC2034 # SSE_PORT: start_upstream also starts the SSE server
read -r UP_PORT SSE_PORT <<<"$(free_ports 2)"
write_bodies
start_upstream
URL=http://127.0.0.1:$UP_PORT/hello

echo "libcurl $("$BIN" --version) (headers $(curl-config --version 2>/dev/null | awk '{print $2}')), $("$BIN" "$URL" 1 min >/dev/null && echo "upstream $URL answers 200")"

# Total Ir of one callgrind output.
ir_total() {
    awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

# Self Ir per shared object of one callgrind output, "object<TAB>Ir". The
# cost line right after a calls= line is the callee's inclusive cost, not
# the caller's own, and is skipped.
ir_by_object() {
    awk '
        function name(v,   id) {
            if (match(v, /^\([0-9]+\)/)) {
                id = substr(v, 1, RLENGTH); v = substr(v, RLENGTH + 1); sub(/^ /, "", v)
                if (v != "") names[id] = v; else v = names[id]
            }
            return v
        }
        /^ob=/ { ob = name(substr($0, 4)); next }
        /^cob=/ { name(substr($0, 5)); next } # also names objects
        /^calls=/ { skip = 1; next }
        /^[0-9+*-]/ { if (skip) { skip = 0; next } cost[ob] += $2; next }
        END { for (o in cost) { n = o; sub(/.*\//, "", n); printf "%s\t%d\n", n, cost[o] } }' "$1"
}

# Inclusive Ir of libcurl's exported functions, "function<TAB>Ir". libcurl
# is stripped, so these are the only names it has; they nest (socket_action
# calls url_get, maprintf...), so the figures overlap.
ir_by_curl_entry() {
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        awk 'match($0, /\?\?\?:curl_[a-z_]+ \[.*libcurl/) {
            f = substr($0, RSTART + 4); sub(/ .*/, "", f); gsub(/,/, "", $1); print f "\t" $1 }'
}

# Calls per syscall of one strace -c output, "syscall<TAB>calls" (total too).
sys_calls() {
    awk '$1 ~ /^[0-9.]+$/ && NF >= 5 { print $NF "\t" $4 }' "$1"
}

declare -A IR_PER IR_NAIVE SYS_PER SYS_NAIVE

MODES="min proxy reuse curlu cached"
if [ "${CURL_FLOOR_ONLY:-}" = cpu ]; then MODES=; fi
for mode in $MODES; do
    echo
    echo "== $mode: callgrind, $N and $N0 requests =="
    for n in "$N" "$N0"; do
        valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$mode.$n.out" \
            "$BIN" "$URL" "$n" "$mode" >"$WORK/cg.$mode.$n.log" 2>&1 ||
            { cat "$WORK/cg.$mode.$n.log" >&2; die "curl_floor $mode $n failed under callgrind"; }
    done
    ir_n=$(ir_total "$WORK/cg.$mode.$N.out")
    ir_n0=$(ir_total "$WORK/cg.$mode.$N0.out")
    IR_NAIVE[$mode]=$((ir_n / N))
    IR_PER[$mode]=$(((ir_n - ir_n0) / (N - N0)))
    echo "total Ir: $ir_n at N=$N, $ir_n0 at N=$N0"
    echo "Ir / N = ${IR_NAIVE[$mode]} per request (includes process start-up)"
    echo "(Ir($N) - Ir($N0)) / $((N - N0)) = ${IR_PER[$mode]} per request (start-up left out)"
    echo "per request by shared object (self cost, same difference):"
    join -t $'\t' -a 1 -e 0 -o 0,1.2,2.2 \
        <(ir_by_object "$WORK/cg.$mode.$N.out" | sort) <(ir_by_object "$WORK/cg.$mode.$N0.out" | sort) |
        awk -F'\t' -v d=$((N - N0)) '{ printf "%d\t%s\n", ($2 - $3) / d, $1 }' | sort -rn |
        awk -F'\t' '$1 > 0 { printf "  %8d  %s\n", $1, $2 }'
    echo "per request in libcurl's exported functions (inclusive, nested, same difference):"
    join -t $'\t' -a 1 -e 0 -o 0,1.2,2.2 \
        <(ir_by_curl_entry "$WORK/cg.$mode.$N.out" | sort) <(ir_by_curl_entry "$WORK/cg.$mode.$N0.out" | sort) |
        awk -F'\t' -v d=$((N - N0)) '{ printf "%d\t%s\n", ($2 - $3) / d, $1 }' | sort -rn |
        awk -F'\t' '$1 >= 100 { printf "  %8d  %s\n", $1, $2 }'

    echo
    echo "== $mode: strace -f -c, $N and $N0 requests =="
    for n in "$N" "$N0"; do
        strace -f -c -o "$WORK/st.$mode.$n.txt" "$BIN" "$URL" "$n" "$mode" >"$WORK/st.$mode.$n.log" 2>&1 ||
            { cat "$WORK/st.$mode.$n.log" >&2; die "curl_floor $mode $n failed under strace"; }
    done
    sys_calls "$WORK/st.$mode.$N.txt" | sort >"$WORK/st.$mode.$N.tsv"
    sys_calls "$WORK/st.$mode.$N0.txt" | sort >"$WORK/st.$mode.$N0.tsv"
    tot_n=$(awk -F'\t' '$1 == "total" { print $2 }' "$WORK/st.$mode.$N.tsv")
    tot_n0=$(awk -F'\t' '$1 == "total" { print $2 }' "$WORK/st.$mode.$N0.tsv")
    SYS_NAIVE[$mode]=$(awk -v a="$tot_n" -v n="$N" 'BEGIN { printf "%.2f", a / n }')
    SYS_PER[$mode]=$(awk -v a="$tot_n" -v b="$tot_n0" -v d=$((N - N0)) 'BEGIN { printf "%.2f", (a - b) / d }')
    echo "total syscalls: $tot_n at N=$N, $tot_n0 at N=$N0"
    echo "calls / N = ${SYS_NAIVE[$mode]} per request (includes process start-up)"
    echo "(calls($N) - calls($N0)) / $((N - N0)) = ${SYS_PER[$mode]} per request (start-up left out)"
    echo "syscalls made 0.1 times or more per request (calls/N, then the difference):"
    join -t $'\t' -a 1 -e 0 -o 0,1.2,2.2 "$WORK/st.$mode.$N.tsv" "$WORK/st.$mode.$N0.tsv" |
        awk -F'\t' -v n="$N" -v d=$((N - N0)) '$1 != "total" && $2 / n >= 0.1 {
            printf "  %-16s %6.2f  %6.2f\n", $1, $2 / n, ($2 - $3) / d }' | sort -k3 -rn
done

if [ -n "$MODES" ]; then
    echo
    echo "epoll_wait is the loop's, not libcurl's: it happens when the upstream has not answered yet"
    echo "by the time libcurl polls the socket right after sending, so it varies from run to run."
    echo "Instructions include the driver (libevent, the callbacks) and libc called by libcurl."
    echo
    echo "## libcurl floor per keep-alive GET ($URL, start-up left out: (X($N) - X($N0)) / $((N - N0)))"
    echo
    echo "| mode | instructions/request | syscalls/request | Ir/N incl. start-up | syscalls/N incl. start-up |"
    echo "|---|---:|---:|---:|---:|"
    for mode in $MODES; do
        echo "| $mode | ${IR_PER[$mode]} | ${SYS_PER[$mode]} | ${IR_NAIVE[$mode]} | ${SYS_NAIVE[$mode]} |"
    done
fi

echo
echo "== CPU time per GET: libcurl alone (curlu and min, C transfers at once) and nginx's whole proxy (wrk, C connections) =="
CPU_N=${CURL_FLOOR_CPU_N:-100000}
ROUNDS=${CURL_FLOOR_ROUNDS:-3}
SECS=${CURL_FLOOR_SECONDS:-5}
command -v wrk >/dev/null || die "wrk is not installed"
# shellcheck disable=SC2034 # NGX_TLS_PORT: start_nginx_proxy listens on it
read -r NGX_PORT NGX_TLS_PORT <<<"$(free_ports 2)"
make_bench_cert
start_nginx_proxy
NGX_URL=http://127.0.0.1:$NGX_PORT/hello
declare -A CURL_CPU MIN_CPU NGX_CPU
RT_DIRECT='' RT_CURL='' RT_NGINX=''
for c in 1 32; do
    for r in $(seq 1 "$ROUNDS"); do
        out=$("$BIN" "$URL" "$CPU_N" curlu "$c") || die "curl_floor curlu $c failed: $out"
        cu=$(sed -n 's/.*cpu_us_per_request=\([0-9.]*\).*/\1/p' <<<"$out")
        # At c=1: the round trip of one GET, seconds / N.
        ct=$(awk -v n="$CPU_N" '{ for (i = 1; i <= NF; i++) if ($i ~ /^seconds=/) { split($i, kv, "="); printf "%.1f", kv[2] * 1e6 / n } }' <<<"$out")
        out=$("$BIN" "$URL" "$CPU_N" min "$c") || die "curl_floor min $c failed: $out"
        mu=$(sed -n 's/.*cpu_us_per_request=\([0-9.]*\).*/\1/p' <<<"$out")
        threads=1
        [ "$c" -gt 1 ] && threads=2
        cpu0=$(cpu_ns "$NGX_PID")
        wout=$(wrk -t "$threads" -c "$c" -d "${SECS}s" "$NGX_URL" 2>&1) || die "wrk failed: $wout"
        cpu1=$(cpu_ns "$NGX_PID")
        reqs=$(awk '/requests in/ { print $1 }' <<<"$wout")
        grep -q "Non-2xx\|Socket errors" <<<"$wout" && die "nginx proxy answered errors: $wout"
        nu=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$reqs" 'BEGIN { printf "%.2f", (b - a) / 1000 / n }')
        echo "  round $r c=$c: libcurl alone $cu us/GET (bare GET: $mu), nginx whole proxy $nu us/GET"
        CURL_CPU[$c]+="$cu "
        MIN_CPU[$c]+="$mu "
        NGX_CPU[$c]+="$nu "
        if [ "$c" = 1 ]; then
            # Round trips, one GET at a time: wrk straight to the upstream,
            # libcurl straight to the upstream, wrk through nginx.
            dout=$(wrk -t 1 -c 1 -d "${SECS}s" "$URL" 2>&1) || die "wrk failed: $dout"
            rt_direct=$(awk '/^Requests\/sec:/ { printf "%.1f", 1e6 / $2 }' <<<"$dout")
            rt_nginx=$(awk '/^Requests\/sec:/ { printf "%.1f", 1e6 / $2 }' <<<"$wout")
            echo "  round $r c=1 round trip per GET: wrk direct $rt_direct us, libcurl direct $ct us, wrk through nginx $rt_nginx us"
            RT_DIRECT+="$rt_direct "
            RT_CURL+="$ct "
            RT_NGINX+="$rt_nginx "
        fi
    done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "## On-CPU time per GET, median of $ROUNDS rounds (libcurl: $CPU_N GETs a run; nginx: wrk ${SECS}s)"
echo
echo "At c=32 the proxy's CPU is what limits its req/s, so nginx/libcurl there is about the highest"
echo "req/s ratio to nginx that a proxy making its upstream calls through this libcurl can reach."
echo "At c=1 req/s follows the round trip instead, and the ratio is no such bound."
echo
echo "| c | libcurl alone as sluice calls it (curlu), µs/GET | libcurl alone, bare GET (min), µs/GET | nginx whole proxy, µs/GET | nginx/libcurl (curlu) | nginx/libcurl (min) |"
echo "|---:|---:|---:|---:|---:|---:|"
for c in 1 32; do
    cm=$(median "${CURL_CPU[$c]}")
    mm=$(median "${MIN_CPU[$c]}")
    nm=$(median "${NGX_CPU[$c]}")
    echo "| $c | $cm | $mm | $nm | $(awk -v a="$nm" -v b="$cm" 'BEGIN { printf "%.2f", a / b }') |" \
        "$(awk -v a="$nm" -v b="$mm" 'BEGIN { printf "%.2f", a / b }') |"
done
rd=$(median "$RT_DIRECT")
rc=$(median "$RT_CURL")
rn=$(median "$RT_NGINX")
echo
echo "## Round trip per GET at c=1, median of $ROUNDS rounds"
echo
echo "| wrk → upstream | libcurl → upstream | wrk → nginx → upstream | libcurl's time over wrk's | nginx's added time |"
echo "|---:|---:|---:|---:|---:|"
echo "| $rd µs | $rc µs | $rn µs | $(awk -v a="$rc" -v b="$rd" 'BEGIN { printf "%+.1f", a - b }') µs | $(awk -v a="$rn" -v b="$rd" 'BEGIN { printf "%+.1f", a - b }') µs |"
echo
echo "libcurl's time over wrk's is what a client built on libcurl costs beyond wrk's own (small) client"
echo "code on the same round trip: a proxy pays it on its upstream side, on top of its client side."
