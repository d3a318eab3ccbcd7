# shellcheck shell=bash
# Shared by run.sh and profile.sh: start the fake upstreams, nginx and sluice
# on free loopback ports under one temp dir, and stop exactly what we started.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SLUICE=${SLUICE:-$ROOT/build-bench/sluice}
NGINX=${NGINX:-/usr/sbin/nginx}
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers drop to 'nobody' when started as root
STARTED_PIDS=()

die() { echo "bench: $*" >&2; exit 1; }

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# N free loopback ports, held open together so they are distinct.
free_ports() {
    node -e '
const net = require("net"); const n = Number(process.argv[1]); const s = [];
(function next() {
  if (s.length === n) { console.log(s.map((x) => x.address().port).join(" ")); s.forEach((x) => x.close()); return; }
  const x = net.createServer(); x.listen(0, "127.0.0.1", () => { s.push(x); next(); });
})();' "$1"
}

wait_port() { # port name
    local i
    for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "$2 did not start listening on $1 (logs in $WORK)"
}

# Resident memory in kB of a process and its direct children (nginx: master
# plus worker; sluice: one process, so just itself).
rss_kb() {
    local total=0 p kb
    for p in "$1" $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# On-CPU nanoseconds of every thread of a process and its children, from
# schedstat (exact, unlike the 10 ms tick of /proc/PID/stat).
cpu_ns() {
    local p total=0 t ns
    for p in "$1" $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
        for t in /proc/"$p"/task/*/schedstat; do
            ns=$(awk '{print $1}' "$t" 2>/dev/null || echo 0)
            total=$((total + ${ns:-0}))
        done
    done
    echo "$total"
}

# About 4 KB of prompt that none of the guard's patterns matches.
BENCH_PROMPT_4K=$(printf 'Summarise the following text in one sentence. '
    for i in $(seq 1 60); do printf 'The quick brown fox jumps over the lazy dog near the river bank %02d. ' "$i"; done)

write_bodies() {
    printf '{"model":"claude-3-5-sonnet-20241022","messages":[{"role":"user","content":"Say hello."}],"max_tokens":64}' \
        >"$WORK/chat_small.json"
    printf '{"model":"claude-3-5-sonnet-20241022","messages":[{"role":"user","content":"%s"}],"max_tokens":64}' \
        "$BENCH_PROMPT_4K" >"$WORK/chat_4k.json"
    printf '{"model":"claude-3-5-sonnet-20241022","messages":[{"role":"user","content":"Say hello."}],"max_tokens":64,"stream":true}' \
        >"$WORK/chat_stream.json"
}

ANTHROPIC_REPLY='{"id":"msg_bench","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[{"type":"text","text":"Hello from the bench upstream."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":7}}'
# A whole Anthropic Messages event stream, served at once by the upstream nginx
# (\n is expanded by nginx): TTFT through a proxy then measures the proxy alone,
# without the Node SSE server's wake-up time in every sample.
ANTHROPIC_SSE='event: message_start\ndata: {"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}\n\nevent: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\nevent: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}\n\nevent: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" from the bench."}}\n\nevent: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\nevent: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
OPENAI_REPLY='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}'

nginx_common() { # prefix-dir
    cat <<NGX
worker_processes 1;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
NGX
}

# The fake upstream: fixed tiny replies from nginx's rewrite phase (no disk).
start_upstream() {
    local d="$WORK/upstream"
    mkdir -p "$d"
    {
        nginx_common "$d"
        cat <<NGX
    server {
        listen 127.0.0.1:$UP_PORT;
        default_type text/plain;
        location / { return 200 "hello from the bench upstream\n"; }
        location = /v1/messages { default_type application/json; return 200 '$ANTHROPIC_REPLY'; }
        location = /v1/chat/completions { default_type application/json; return 200 '$OPENAI_REPLY'; }
        location = /sse-static/v1/messages { default_type text/event-stream; return 200 '$ANTHROPIC_SSE'; }
    }
}
NGX
    } >"$d/nginx.conf"
    "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
    UP_PID=$!
    STARTED_PIDS+=("$UP_PID")
    node "$BENCH_DIR/sse_upstream.js" "$SSE_PORT" >"$WORK/sse.log" 2>&1 &
    SSE_PID=$!
    STARTED_PIDS+=("$SSE_PID")
    wait_port "$UP_PORT" "upstream nginx"
    wait_port "$SSE_PORT" "SSE upstream"
}

# nginx as the reference reverse proxy: 1 worker, HTTP/1.1 keep-alive pool of
# 64 to the upstream, X-Forwarded-* like any real deployment, no access log.
start_nginx_proxy() {
    local d="$WORK/nginx"
    mkdir -p "$d"
    {
        nginx_common "$d"
        cat <<NGX
    upstream bench_up { server 127.0.0.1:$UP_PORT; keepalive 64; }
    upstream bench_sse { server 127.0.0.1:$SSE_PORT; keepalive 16; }
    server {
        listen 127.0.0.1:$NGX_PORT;
        listen 127.0.0.1:$NGX_TLS_PORT ssl;
        ssl_certificate $WORK/tls/cert.pem;
        ssl_certificate_key $WORK/tls/key.pem;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        location / { proxy_pass http://bench_up; }
        location /sse/ { proxy_pass http://bench_sse/; proxy_buffering off; }
        location /sse-static/ { proxy_pass http://bench_up/sse-static/; proxy_buffering off; }
    }
}
NGX
    } >"$d/nginx.conf"
    "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
    NGX_PID=$!
    STARTED_PIDS+=("$NGX_PID")
    wait_port "$NGX_PORT" "nginx proxy"
}

have_ai_proxy() {
    local help
    help=$("$SLUICE" -h 2>&1 || true)
    grep -Eq '^Plugins:.* ai-proxy( |$)' <<<"$help"
}

ai_proxy_conf() { # upstream-url
    cat <<YML
        - name: ai-proxy
          config:
            route_type: llm/v1/chat
            auth: { header_name: x-api-key, header_value: test }
            model:
              provider: anthropic
              name: claude-3-5-sonnet-20241022
              options: { upstream_url: "$1", anthropic_version: "2023-06-01" }
YML
}

guard_decorator_conf() {
    cat <<'YML'
        - name: ai-prompt-guard
          config:
            deny_patterns:
              - "(?i)ignore (all|any) previous instructions"
              - "(?i)you are now DAN"
              - "(?i)\\bpassword\\b.*\\breveal\\b"
              - "\\b\\d{3}-\\d{2}-\\d{4}\\b"
              - "(?i)system prompt"
              - "(?i)jailbreak"
              - "(?i)credit card number"
              - "(?i)rm -rf /"
              - "(?i)<script[^>]*>"
              - "(?i)drop table \\w+"
        - name: ai-prompt-decorator
          config:
            prompts:
              prepend:
                - { role: system, content: "You are a concise assistant for the benchmark." }
              append:
                - { role: user, content: "Answer in one sentence." }
YML
}

write_sluice_conf() {
    {
        cat <<YML
_format_version: "3.0"
services:
  - name: plain
    url: http://127.0.0.1:$UP_PORT
    routes:
      - name: plain
        paths: ["/"]
        strip_path: false
      - name: plain-guarded
        paths: ["/guarded/"]
        plugins:
YML
        guard_decorator_conf
        cat <<YML
  - name: sse
    url: http://127.0.0.1:$SSE_PORT
    routes:
      - name: sse
        paths: ["/sse"]
  - name: sse-static
    url: http://127.0.0.1:$UP_PORT/sse-static
    routes:
      - name: sse-static
        paths: ["/sse-static"]
YML
        if have_ai_proxy; then
            cat <<YML
  - name: ai
    url: http://127.0.0.1:$UP_PORT
    routes:
      - name: ai-chat
        paths: ["/ai/chat"]
        plugins:
YML
            ai_proxy_conf "http://127.0.0.1:$UP_PORT/v1/messages"
            cat <<YML
      - name: ai-guarded
        paths: ["/ai/guarded"]
        plugins:
YML
            guard_decorator_conf
            ai_proxy_conf "http://127.0.0.1:$UP_PORT/v1/messages"
            cat <<YML
  - name: ai-stream
    url: http://127.0.0.1:$SSE_PORT
    routes:
      - name: ai-stream
        paths: ["/ai/stream"]
        plugins:
YML
            ai_proxy_conf "http://127.0.0.1:$SSE_PORT/v1/messages"
            cat <<YML
      - name: ai-stream-static
        paths: ["/ai/stream-static"]
        plugins:
YML
            ai_proxy_conf "http://127.0.0.1:$UP_PORT/sse-static/v1/messages"
        fi
    } >"$WORK/kong.yml"
}

start_sluice() { # extra command prefix (e.g. valgrind ...), optional
    write_sluice_conf
    "$SLUICE" -t -c "$WORK/kong.yml" >"$WORK/sluice-t.log" 2>&1 ||
        { cat "$WORK/sluice-t.log" >&2; die "sluice -t refused the bench config ($WORK/kong.yml)"; }
    "$@" "$SLUICE" -c "$WORK/kong.yml" --proxy-listen "127.0.0.1:$SL_PORT" \
        --proxy-listen "127.0.0.1:$SL_TLS_PORT ssl" --ssl-cert "$WORK/tls/cert.pem" \
        --ssl-cert-key "$WORK/tls/key.pem" --admin-listen "127.0.0.1:$ADM_PORT" --workers 1 --log-level warn 2>"$WORK/sluice.log" &
    SL_PID=$!
    STARTED_PIDS+=("$SL_PID")
    wait_port "$SL_PORT" "sluice"
}

# One certificate for both TLS listeners: ECDSA P-256, what a current
# deployment would use (the same for both, so the handshake and record costs
# compare like for like).
make_bench_cert() {
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null ||
        die "openssl could not make the bench certificate"
    chmod 644 "$WORK/tls/key.pem" # nginx reads it as root anyway; the temp dir is ours
}

start_all() {
    [ -x "$SLUICE" ] || die "no sluice binary at $SLUICE (cmake -S $ROOT -B $ROOT/build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build $ROOT/build-bench -j2)"
    command -v wrk >/dev/null || die "wrk is not installed"
    read -r UP_PORT SSE_PORT NGX_PORT SL_PORT ADM_PORT NGX_TLS_PORT SL_TLS_PORT <<<"$(free_ports 7)"
    write_bodies
    make_bench_cert
    start_upstream
    start_nginx_proxy
    start_sluice "$@"
}
