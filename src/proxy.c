/*
 * The life of a proxied request:
 *
 *   request head (client_conn.c) → route match → body, when a plugin
 *   needs it whole → access hooks (may answer or suspend)
 *   → upstream transfer on the worker's curl multi → response_headers hooks
 *   → body chunks through response_body hooks to the client as they come
 *   → log hooks and the access log line → the arena goes.
 *
 * Backpressure, both ways: when the client's output is above HIGH_WATER
 * (BUFFERED_HIGH_WATER on routes with response_buffering) the
 * curl write callback pauses the transfer and gw_proxy_on_drained resumes
 * it; a streamed request body that the client has not sent yet pauses the
 * upload and gw_proxy_on_body resumes it (and the connection stops reading
 * while the upstream is slower than the client). A client that disconnects
 * is noticed at once (the connection always reads) and the transfer is
 * removed from the next loop iteration, never inside a curl callback.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "gw_arena.h"
#include "gw_log.h"
#include "client_conn.h"
#include "gw_plugin.h"
#include "http1.h"
#include "json_alloc.h"
#include "llm/llm.h"
#include "gw_num_text.h"
#include "path_dots.h"
#include "proxy.h"
#include "upstream_path.h"
#include "url_userinfo.h"
#include "request_id.h"
#include "sluice.h"
#include "worker.h"

#define HIGH_WATER (256 * 1024)
/* response_buffering: the upstream may run this far ahead of a slow client,
 * so that its connection is released sooner (nginx's proxy_buffering spills
 * to disk; we hold it in memory, bounded). */
#define BUFFERED_HIGH_WATER (8 * 1024 * 1024)
/* A request body above this is followed by upload progress (write_timeout). */
#define LARGE_BODY (64 * 1024)
#define MAX_BUFFERED_RESPONSE (64L * 1024 * 1024)

static const char *const hop_by_hop[] = {
    "Connection", "Keep-Alive",          "Proxy-Connection",   "TE", "Trailer", "Transfer-Encoding",
    "Upgrade",    "Proxy-Authorization", "Proxy-Authenticate", NULL,
};

/* While connecting, curl's CURLOPT_CONNECTTIMEOUT_MS is the bound; our own
 * timer only backs it up, a little later, so that curl's (clearer) error
 * wins the race. */
#define CONNECT_TIMER_SLACK_MS 1000

static int is_hop_by_hop(const char *name)
{
    /* All of them start with c, k, p, t or u: most headers leave at once. */
    switch (name[0] | 0x20) {
    case 'c':
    case 'k':
    case 'p':
    case 't':
    case 'u':
        break;
    default:
        return 0;
    }
    for (size_t i = 0; hop_by_hop[i]; i++)
        if (strcasecmp(name, hop_by_hop[i]) == 0) return 1;
    return 0;
}

/* Is `name` listed in the Connection header value (a comma list)? */
static int listed_in_connection(const char *connection, const char *name)
{
    if (!connection) return 0;
    size_t n = strlen(name);
    const char *p = connection;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if ((size_t)(p - start) == n && strncasecmp(start, name, n) == 0) return 1;
    }
    return 0;
}

/* Every line of a field as one list (RFC 9110 5.3: "a, b"), or NULL; the
 * single line itself, uncopied, in the usual case. */
static const char *field_list(struct gw_arena *a, const struct gw_headers *h, const char *name,
                              size_t name_len)
{
    const char *one = NULL, *all = NULL;
    const struct gw_header *kv;
    gw_headers_foreach(kv, h)
    {
        if (!gw_header_is(kv, name, name_len)) continue;
        if (!one)
            one = kv->value;
        else
            all = gw_sprintf(a, "%s, %s", all ? all : one, kv->value);
    }
    return all ? all : one;
}

static double ms_between(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1000.0 : 0.0;
}

/* HEAD, 1xx, 204 and 304 replies have no body whatever their headers say. */
static int reply_has_no_body(const struct proxy_request *rq)
{
    int st = rq->pub.status;
    return strcmp(rq->pub.method, "HEAD") == 0 || (st >= 100 && st < 200) || st == 204 || st == 304;
}

/* The answer goes to the connection once: after that the request must not
 * touch it (it may already serve the next request). */
static struct gw_conn *take_conn(struct proxy_request *rq)
{
    struct gw_conn *c = rq->conn;
    rq->conn = NULL;
    return c;
}

static void update_pause(struct proxy_request *rq)
{
    if (rq->easy && rq->in_multi)
        curl_easy_pause(rq->easy, (rq->paused ? CURLPAUSE_RECV : 0) |
                                      (rq->upload_paused ? CURLPAUSE_SEND : 0));
}

/* --- finishing ---------------------------------------------------------- */

/* uri and error are quoted in the access line: a request target may hold
 * '"' and '\', and an error may carry text from a provider's reply. */
static const char *log_quoted(struct gw_arena *a, const char *s)
{
    size_t n = gw_log_escaped_len(s);
    if (n == strlen(s)) return s; /* the usual case: no copy */
    char *out = gw_alloc(a, n + 1);
    *gw_log_escape(out, s) = '\0';
    return out;
}

/* A field written bare (consumer=alice) unless it needs quotes. */
static const char *log_value(struct gw_arena *a, const char *s)
{
    if (!gw_log_needs_quotes(s)) return s;
    char *out = gw_alloc(a, gw_log_escaped_len(s) + 3), *o = out;
    *o++ = '"';
    o = gw_log_escape(o, s);
    *o++ = '"';
    *o = '\0';
    return out;
}

static void write_access_log(struct proxy_request *rq)
{
    if (GW_LOG_INFO < gw_log_threshold) return;
    struct gw_request *r = &rq->pub;
    const char *consumer = "-";
    if (r->consumer)
        consumer = log_value(r->arena, r->consumer->username ? r->consumer->username
                                                             : r->consumer->custom_id);
    gw_log_write(GW_LOG_INFO,
                 "request_id=%s client=%s method=%s uri=\"%s\" status=%d upstream_status=%d "
                 "route=%s service=%s consumer=%s bytes=%llu latency_ms=%.3f "
                 "upstream_latency_ms=%.3f%s%s%s%s%s",
                 r->id, r->client_ip, r->method, log_quoted(r->arena, r->uri), r->status,
                 r->upstream_status, r->route && r->route->name ? r->route->name : "-",
                 r->service && r->service->name ? r->service->name : "-", consumer,
                 (unsigned long long)r->bytes_sent, ms_between(r->t_start, r->t_end),
                 r->t_upstream_headers ? ms_between(r->t_upstream_start, r->t_upstream_headers)
                                       : 0.0,
                 r->client_aborted ? " client_aborted=true" : "", r->error ? " error=\"" : "",
                 r->error ? log_quoted(r->arena, r->error) : "", r->error ? "\"" : "",
                 rq->log_extra_len ? rq->log_extra : "");
}

void gw_proxy_finish(struct proxy_request *rq)
{
    if (rq->finished) return;
    rq->finished = 1;
    struct gw_worker *w = rq->worker;
    struct gw_request *r = &rq->pub;
    r->t_end = gw_now_us();
    r->client_aborted = rq->client_gone;
    if (rq->client_gone && !rq->reply_started && !r->early_response) r->status = 499;

    struct gw_arena *json_prev = gw_json_alloc_enter(r->arena);
    for (size_t i = 0; i < rq->chain.n; i++) {
        const struct gw_chain_entry *e = &rq->chain.v[i];
        if (e->inst->plugin->log) e->inst->plugin->log(r, e->inst->conf, rq->ctx[e->plugin_index]);
    }
    gw_json_alloc_leave(json_prev);
    write_access_log(rq);

    if (rq->easy) {
        if (rq->in_multi) gw_upstream_remove(w, rq->easy);
        rq->in_multi = 0;
        gw_upstream_easy_put(w, rq->easy, rq->tls_blobs);
        rq->easy = NULL;
    }
    if (rq->timer) event_del(rq->timer); /* its memory is the arena's */
    if (rq->conn) {
        /* Every path answers before finishing; should one not, the client
         * still gets an answer rather than a connection that hangs. */
        gw_error("request_id=%s finished without an answer", r->id);
        struct gw_conn *c = take_conn(rq);
        if (rq->reply_started) {
            gw_conn_reply_abort(c);
        } else {
            gw_headers_clear(r->response_headers);
            gw_conn_reply(c, 500, r->response_headers, NULL, 0);
        }
    }
    if (r->body) evbuffer_free(r->body);
    if (rq->json) cJSON_Delete(rq->json);
    if (rq->resp) evbuffer_free(rq->resp);
    if (rq->early_body) evbuffer_free(rq->early_body);
    free(rq->log_extra);
    gw_snapshot_unref(rq->snap);
    atomic_fetch_sub_explicit(&w->in_flight, 1, memory_order_relaxed);
    gw_arena_free(r->arena);
    gw_worker_request_done(w);
}

/* --- response helpers -------------------------------------------------- */

static void add_gateway_headers(struct proxy_request *rq)
{
    struct gw_request *r = &rq->pub;
    struct gw_headers *h = r->response_headers;
    char buf[24];
    /* RFC 9110 7.6.3: the version of the message as it came to us. */
    long version = CURL_HTTP_VERSION_1_1;
    if (rq->easy && r->upstream_status)
        curl_easy_getinfo(rq->easy, CURLINFO_HTTP_VERSION, &version);
    if (version == CURL_HTTP_VERSION_1_0)
        gw_headers_add_ref(h, "Via", 3, "1.0 sluice", 10);
    else if (version == CURL_HTTP_VERSION_2_0)
        gw_headers_add_ref(h, "Via", 3, "2 sluice", 8);
    else
        gw_headers_add_ref(h, "Via", 3, "1.1 sluice", 10);
    gw_headers_add_ref(h, "X-Sluice-Request-Id", 19, r->id, 32);
    if (r->t_upstream_headers) {
        const char *v = gw_u64_text(buf, (r->t_upstream_headers - r->t_upstream_start) / 1000);
        gw_headers_add_parsed(h, "X-Sluice-Upstream-Latency", 25, v, strlen(v));
        v = gw_u64_text(buf, (r->t_upstream_start - r->t_start) / 1000);
        gw_headers_add_parsed(h, "X-Sluice-Proxy-Latency", 22, v, strlen(v));
    }
}

/* Plugin hooks run with cJSON allocating from the request's arena
 * (json_alloc.h). */
static void run_response_headers(struct proxy_request *rq)
{
    struct gw_arena *json_prev = gw_json_alloc_enter(rq->pub.arena);
    for (size_t i = 0; i < rq->chain.n; i++) {
        const struct gw_chain_entry *e = &rq->chain.v[i];
        if (e->inst->plugin->ctx_size && !rq->ctx[e->plugin_index]) continue; /* not set up */
        if (e->inst->plugin->response_headers)
            e->inst->plugin->response_headers(&rq->pub, e->inst->conf, rq->ctx[e->plugin_index]);
    }
    gw_json_alloc_leave(json_prev);
}

static void run_response_body(struct proxy_request *rq, struct evbuffer *chunk, int last)
{
    struct gw_arena *json_prev = gw_json_alloc_enter(rq->pub.arena);
    for (size_t i = 0; i < rq->chain.n; i++) {
        const struct gw_chain_entry *e = &rq->chain.v[i];
        if (e->inst->plugin->response_body)
            e->inst->plugin->response_body(&rq->pub, e->inst->conf, rq->ctx[e->plugin_index], chunk,
                                           last);
    }
    gw_json_alloc_leave(json_prev);
}

void gw_proxy_send_early(struct proxy_request *rq)
{
    struct gw_request *r = &rq->pub;
    r->early_response = 1;
    if (rq->conn) {
        run_response_headers(rq);
        add_gateway_headers(rq);
        if (!gw_headers_get(r->response_headers, "Content-Type"))
            gw_headers_add(r->response_headers, "Content-Type",
                           rq->early_content_type ? rq->early_content_type
                                                  : "application/json; charset=utf-8");
        /* RFC 9110 15.3.6: a 205 has no content, but unlike a 204 it says
         * so (Content-Length: 0); a plugin's message body is dropped. */
        if (r->status == 205 && rq->early_body)
            evbuffer_drain(rq->early_body, evbuffer_get_length(rq->early_body));
        r->bytes_sent = rq->early_body ? evbuffer_get_length(rq->early_body) : 0;
        gw_conn_reply(take_conn(rq), r->status, r->response_headers, rq->early_body,
                      reply_has_no_body(rq));
    }
    gw_proxy_finish(rq);
}

/* The core's own error answers (400, 413, 502, 503, 504...). Plugins see
 * them as an early answer: their response_headers hooks run (the
 * correlation id is echoed, the rate-limit counters shown, as on any other
 * answer), then log; no body phase. */
void gw_proxy_core_error(struct proxy_request *rq, int status, const char *message)
{
    struct gw_request *r = &rq->pub;
    r->error = message;
    gw_headers_clear(r->response_headers);
    if (r->openai_errors)
        gw_respond_openai_error(r, status, status >= 500 ? "api_error" : "invalid_request_error",
                                "%s", message);
    else
        gw_respond_message(r, status, "%s", message);
    r->early_response = 1;
    if (rq->conn) {
        run_response_headers(rq);
        add_gateway_headers(rq);
        gw_headers_add(r->response_headers, "Content-Type", "application/json; charset=utf-8");
        r->bytes_sent = evbuffer_get_length(rq->early_body);
        gw_conn_reply(take_conn(rq), status, r->response_headers, rq->early_body,
                      reply_has_no_body(rq));
    }
    gw_proxy_finish(rq);
}

/* --- upstream callbacks ------------------------------------------------ */

void gw_proxy_on_drained(struct proxy_request *rq)
{
    if (rq->paused && !rq->client_gone) {
        rq->paused = 0;
        update_pause(rq);
    }
}

/* A filter's last words after a no-body head (a 204 event stream) are
 * dropped: sent, the client would take them for the next response. */
static void send_chunk(struct proxy_request *rq)
{
    size_t n = evbuffer_get_length(rq->resp);
    if (!n) return;
    if (reply_has_no_body(rq)) {
        evbuffer_drain(rq->resp, n);
        return;
    }
    rq->pub.bytes_sent += n;
    gw_conn_reply_body(rq->conn, rq->resp);
}

/* The one length all of a Content-Length field's list members name
 * ("42", "42, 42"), or -1 if any is not a number or they differ. */
static long long content_length_value(const char *v, size_t n)
{
    long long value = -1;
    size_t i = 0;
    for (;;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i == n || v[i] < '0' || v[i] > '9') return -1;
        long long x = 0;
        while (i < n && v[i] >= '0' && v[i] <= '9') {
            if (x > (LLONG_MAX - 9) / 10) return -1;
            x = x * 10 + (v[i++] - '0');
        }
        if (value >= 0 && x != value) return -1;
        value = x;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i == n) return value;
        if (v[i++] != ',') return -1;
    }
}

/* RFC 9112 6.3, the upstream's framing as the client will see it: with
 * Transfer-Encoding (hop-by-hop: removed, curl decoded it) a Content-Length
 * means nothing and must not be forwarded; without, every Content-Length
 * field must name one same length, forwarded once. Other replies cannot be
 * framed for the client: -1, and a 502. The client side frames its answer
 * by the Content-Length it is given, so a wrong one would leave the client
 * waiting for bytes that never come, or read the next reply as body. */
static int check_upstream_length(struct gw_headers *h, const char **why)
{
    int chunked = gw_headers_get(h, "Transfer-Encoding") != NULL;
    struct gw_header *first = NULL;
    long long length = -1;
    struct gw_header **link = &h->first;
    h->tail = &h->first;
    while (*link) {
        struct gw_header *kv = *link;
        if (gw_header_is(kv, "Content-Length", 14)) {
            long long x = content_length_value(kv->value, kv->value_len);
            if (!chunked && (x < 0 || (length >= 0 && x != length))) {
                *why = "conflicting or invalid Content-Length";
                return -1;
            }
            length = x;
            if (!chunked && !first) {
                first = kv;
                link = &kv->next;
                h->tail = link;
                continue;
            }
            *link = kv->next; /* a repeat, or meaningless next to chunked */
            continue;
        }
        link = &kv->next;
        h->tail = link;
    }
    if (first) {
        char buf[24];
        const char *digits = gw_u64_text(buf, (uint64_t)length);
        size_t n = (size_t)(buf + 23 - digits);
        if (first->value_len != n) { /* "42, 42" or "042": say it once, plainly */
            first->value = gw_strndup(h->arena, digits, n);
            first->value_len = n;
        }
    }
    return 0;
}

static void on_upstream_headers(struct proxy_request *rq)
{
    struct gw_request *r = &rq->pub;
    long code = 0;
    curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &code);
    r->upstream_status = (int)code;
    r->status = (int)code;
    r->t_upstream_headers = gw_now_us();

    /* Hop-by-hop headers are the connection's business, not the client's. */
    struct gw_headers *h = r->response_headers;
    const char *connection = field_list(r->arena, h, "Connection", 10);
    int strip_length = rq->chain.has_body_filter && !reply_has_no_body(rq);
    struct gw_header **link = &h->first;
    h->tail = &h->first;
    while (*link) {
        struct gw_header *kv = *link;
        if (is_hop_by_hop(kv->name) || listed_in_connection(connection, kv->name) ||
            (strip_length && gw_header_is(kv, "Content-Length", 14))) {
            *link = kv->next;
        } else {
            link = &kv->next;
            h->tail = link;
        }
    }
    run_response_headers(rq);
    add_gateway_headers(rq);
    if (!rq->conn) return;
    if (r->buffer_response) {
        gw_headers_remove(h, "Content-Length");
        return;
    }
    gw_conn_reply_head(rq->conn, r->status, h, reply_has_no_body(rq));
    rq->reply_started = 1;
    if (rq->chain.has_body_filter) {
        const char *ct = gw_headers_get(h, "Content-Type");
        rq->first_event = ct && strncasecmp(ct, "text/event-stream", 17) == 0;
    }
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    struct proxy_request *rq = arg;
    size_t len = size * nitems;
    rq->last_progress_us = gw_progress_now_us();
    if (rq->headers_done) return len; /* trailers */
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new header block (after a 1xx): start over. */
        gw_headers_clear(rq->pub.response_headers);
        return len;
    }
    size_t n = len;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n == 0) {
        long code = 0;
        curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code == 101 || code > 599) {
            /* sluice never sends Upgrade (hop-by-hop), so a 101 switches to
             * what the client never named (RFC 9110 7.8; libcurl would read
             * the new protocol as body); 600 and up is no status at all
             * (RFC 9110 15). Either way there is nothing to relay: 502. */
            rq->upstream_bad =
                code == 101 ? "a protocol switch (101) the request did not ask for"
                            : gw_sprintf(rq->pub.arena, "status code %ld is out of range", code);
            rq->pub.upstream_status = (int)code;
            return 0;
        }
        if (code >= 100 && code < 200) return len;
        /* RFC 9110 8.6: a 204 carries no Content-Length; one from the
         * upstream is dropped rather than passed on. */
        if (code == 204) gw_headers_remove(rq->pub.response_headers, "Content-Length");
        if (check_upstream_length(rq->pub.response_headers, &rq->upstream_bad) < 0) {
            rq->pub.upstream_status = (int)code; /* for the log line */
            return 0; /* curl ends the transfer: CURLE_WRITE_ERROR, 502 */
        }
        rq->headers_done = 1;
        on_upstream_headers(rq);
        return len;
    }
    struct gw_headers *h = rq->pub.response_headers;
    if (buf[0] == ' ' || buf[0] == '\t') {
        /* obs-fold (RFC 9112 5.2): this line continues the previous field.
         * A proxy must replace the fold with a space, not drop the rest. */
        const char *v = buf, *end = buf + n;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        if (h->tail == &h->first || v == end || !gw_h1_is_field_value(v, (size_t)(end - v)))
            return len;
        struct gw_header *last =
            (struct gw_header *)((char *)h->tail - offsetof(struct gw_header, next));
        size_t m = (size_t)(end - v);
        char *joined = gw_alloc(h->arena, last->value_len + 1 + m + 1);
        memcpy(joined, last->value, last->value_len);
        joined[last->value_len] = ' ';
        memcpy(joined + last->value_len + 1, v, m);
        joined[last->value_len + 1 + m] = '\0';
        last->value = joined;
        last->value_len += 1 + m;
        return len;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon || colon == buf) return len; /* not a header: ignore it, as browsers do */
    const char *v = colon + 1;
    const char *end = buf + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    /* A bad name or a control byte in the value (a bare CR would end the
     * line for some clients, a NUL would cut it short) would reach the
     * client as a malformed head: such a line is dropped. */
    if (!gw_h1_is_token(buf, (size_t)(colon - buf)) || !gw_h1_is_field_value(v, (size_t)(end - v)))
        return len;
    gw_headers_add_parsed(h, buf, (size_t)(colon - buf), v, (size_t)(end - v));
    return len;
}

/* Length of data up to and including the blank line that ends its first
 * server-sent event ("\n\n" or "\n\r\n"), or 0 if there is none. */
static size_t event_end(const char *p, size_t n)
{
    for (const char *nl = memchr(p, '\n', n); nl;
         nl = memchr(nl + 1, '\n', n - (size_t)(nl + 1 - p))) {
        size_t i = (size_t)(nl - p) + 1;
        if (i < n && p[i] == '\n') return i + 1;
        if (i + 1 < n && p[i] == '\r' && p[i + 1] == '\n') return i + 2;
        if (i >= n) break;
    }
    return 0;
}

static void filter_and_send(struct proxy_request *rq, const char *p, size_t n)
{
    evbuffer_add(rq->resp, p, n);
    run_response_body(rq, rq->resp, 0);
    send_chunk(rq);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct proxy_request *rq = arg;
    struct gw_request *r = &rq->pub;
    size_t len = size * nmemb;
    rq->last_progress_us = gw_progress_now_us();
    if (!r->t_upstream_first_byte) r->t_upstream_first_byte = gw_now_us();
    if (rq->client_gone) return 0; /* abort the transfer */
    if (!rq->headers_done) {
        rq->headers_done = 1;
        on_upstream_headers(rq);
    }
    if (r->buffer_response) {
        if (evbuffer_get_length(rq->resp) + len > MAX_BUFFERED_RESPONSE) return 0;
        evbuffer_add(rq->resp, ptr, len);
        return len;
    }
    if (gw_conn_pending(rq->conn) >
        (r->route && r->route->response_buffering ? BUFFERED_HIGH_WATER : HIGH_WATER)) {
        rq->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (rq->first_event) {
        /* An event stream through a body filter (ai-proxy translating a
         * provider's events): when the first read holds several events (a
         * provider's start events come in one segment; a fast one sends a
         * whole short reply at once), each is filtered and sent alone until
         * the first bytes have left, so that the client's first chunk does
         * not wait for the translation of everything behind it. A cut that
         * is not at an event boundary is harmless: the filter reassembles. */
        size_t at = 0;
        while (rq->first_event && at < len) {
            size_t n = event_end(ptr + at, len - at);
            if (!n) break;
            filter_and_send(rq, ptr + at, n);
            at += n;
            if (r->bytes_sent) rq->first_event = 0;
        }
        if (at < len) filter_and_send(rq, ptr + at, len - at);
        return len;
    }
    evbuffer_add(rq->resp, ptr, len);
    if (rq->chain.has_body_filter) run_response_body(rq, rq->resp, 0);
    send_chunk(rq);
    return len;
}

void gw_proxy_on_client_gone(struct proxy_request *rq)
{
    rq->client_gone = 1;
    rq->conn = NULL;
    /* Handled from the loop, never inside whatever callback we are in
     * (possibly a curl one). */
    event_active(rq->timer, EV_TIMEOUT, 1);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_request *rq = arg;
    if (rq->client_gone) {
        if (rq->suspended) return; /* gw_request_resume finishes it */
        gw_proxy_finish(rq);
        return;
    }
    if (!rq->in_multi) return;
    struct gw_request *r = &rq->pub;
    /* Connecting is bounded by curl's own connect timeout; then, as in Kong,
     * write_timeout is the longest pause while sending the body and
     * read_timeout the longest silence between two reads. */
    long limit_ms = !rq->upstream_connected ? r->connect_timeout_ms + CONNECT_TIMER_SLACK_MS
                    : !rq->upload_done      ? r->write_timeout_ms
                                            : r->read_timeout_ms;
    uint64_t deadline = rq->last_progress_us + (uint64_t)limit_ms * 1000;
    uint64_t now = gw_progress_now_us();
    if (rq->paused || rq->upload_paused || now < deadline) {
        /* Waiting on the client (either way) is not the upstream's delay:
         * look again a whole period later; never an unsigned wrap below 0. */
        uint64_t wait = now < deadline ? deadline - now : (uint64_t)limit_ms * 1000;
        struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};
        evtimer_add(rq->timer, &tv);
        return;
    }
    gw_proxy_upstream_done(rq, CURLE_OPERATION_TIMEDOUT);
}

/* A stream that broke after its headers went out: let the body filters add
 * a last word (ai-proxy sends an SSE error event), then close the
 * connection without ending the body, so the client sees the truncation. */
static void fail_stream(struct proxy_request *rq, const char *why)
{
    rq->pub.error = why;
    if (rq->chain.has_body_filter) run_response_body(rq, rq->resp, 1);
    if (rq->conn) {
        send_chunk(rq);
        gw_conn_reply_abort(take_conn(rq));
    }
    gw_proxy_finish(rq);
}

static int setup_transfer(struct proxy_request *rq);

void gw_proxy_shutdown_request(struct proxy_request *rq)
{
    if (rq->finished) return;
    if (rq->suspended) {
        /* The plugin holding it resumes it from its worker_exit hook;
         * gw_request_resume then answers 503 instead of going on. */
        rq->shutting_down = 1;
        return;
    }
    if (rq->client_gone) {
        gw_proxy_finish(rq);
    } else if (rq->reply_started) {
        if (rq->in_multi) {
            gw_upstream_remove(rq->worker, rq->easy);
            rq->in_multi = 0;
        }
        fail_stream(rq, "the gateway is shutting down");
    } else {
        gw_proxy_core_error(rq, 503, "The gateway is shutting down");
    }
}

int gw_proxy_transfer_live(const struct proxy_request *rq)
{
    return rq->in_multi;
}

/* read_timeout is the longest silence: a head or a chunk that trickles in
 * is not silence, though curl calls us back only per whole line or chunk. */
void gw_proxy_upstream_readable(struct proxy_request *rq)
{
    rq->last_progress_us = gw_progress_now_us();
}

/* Whether the transfer's connection negotiated HTTP/2 (ALPN "h2"). */
static int on_h2(CURL *e)
{
    struct curl_tlssessioninfo *tls = NULL;
    if (curl_easy_getinfo(e, CURLINFO_TLS_SSL_PTR, &tls) != CURLE_OK || !tls ||
        tls->backend != CURLSSLBACKEND_OPENSSL || !tls->internals)
        return 0;
    const unsigned char *alpn = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(tls->internals, &alpn, &len);
    return len == 2 && memcmp(alpn, "h2", 2) == 0;
}

/* CURLOPT_PREREQFUNCTION: the connection is up, the request about to go.
 * Called again within one transfer only when libcurl resends the request
 * by itself: a reused HTTP/1.1 connection ended without a byte of answer.
 * That upstream may have read the request and acted on it, so a request
 * that is not idempotent is not sent twice (RFC 9110 9.2.2: "A proxy MUST
 * NOT automatically retry non-idempotent requests"; nginx and Kong do not).
 * HTTP/2 says more: a stream refused (REFUSED_STREAM, or past a GOAWAY's
 * last stream) was not processed (RFC 9113 8.7), and is what libcurl
 * resends there, so a POST that met one on h2 may go again. */
static int connected_cb(void *arg, char *conn_primary_ip, char *conn_local_ip,
                        int conn_primary_port, int conn_local_port)
{
    struct proxy_request *rq = arg;
    if (rq->send_once) {
        if (rq->upstream_connected) {
            rq->resend_refused = 1;
            return CURL_PREREQFUNC_ABORT;
        }
        if (on_h2(rq->easy)) rq->send_once = 0;
    }
    rq->upstream_connected = 1;
    rq->last_progress_us = gw_progress_now_us();
    return CURL_PREREQFUNC_OK;
}

/* CURLOPT_XFERINFOFUNCTION, for bodies large enough to take a while: upload
 * progress keeps write_timeout from firing, and its end starts read_timeout. */
static int upload_progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow)
{
    struct proxy_request *rq = arg;
    if (ulnow != rq->uploaded) {
        rq->uploaded = ulnow;
        rq->last_progress_us = gw_progress_now_us();
    }
    if (!rq->upload_done && ultotal > 0 && ulnow >= ultotal) {
        rq->upload_done = 1;
        rq->last_progress_us = gw_progress_now_us();
    }
    return 0;
}

void gw_proxy_upstream_done(struct proxy_request *rq, CURLcode result)
{
    struct gw_request *r = &rq->pub;
    if (rq->in_multi) {
        gw_upstream_remove(rq->worker, rq->easy);
        rq->in_multi = 0;
    }
    if (rq->client_gone) {
        gw_proxy_finish(rq);
        return;
    }
    if (result == CURLE_OK && !rq->headers_done) {
        /* A response with no body at all (HEAD, 204, 304). */
        if (check_upstream_length(r->response_headers, &rq->upstream_bad) < 0) {
            result = CURLE_WRITE_ERROR;
        } else {
            rq->headers_done = 1;
            on_upstream_headers(rq);
        }
    }
    if (result == CURLE_OK) {
        if (r->buffer_response) {
            run_response_body(rq, rq->resp, 1);
            r->bytes_sent = evbuffer_get_length(rq->resp);
            gw_conn_reply(take_conn(rq), r->status, r->response_headers, rq->resp,
                          reply_has_no_body(rq));
        } else {
            if (rq->chain.has_body_filter) {
                run_response_body(rq, rq->resp, 1);
                send_chunk(rq);
            }
            gw_conn_reply_end(take_conn(rq));
        }
        gw_proxy_finish(rq);
        return;
    }

    const char *curl_err = curl_easy_strerror(result);
    /* retries: after a failed connect, refused or timed out (Kong, nginx's
     * proxy_next_upstream error timeout), never once the request went out. */
    int connect_failed =
        result == CURLE_COULDNT_CONNECT ||
        ((result == CURLE_OPERATION_TIMEDOUT || result == CURLE_SSL_CONNECT_ERROR) &&
         !rq->upstream_connected);
    if (connect_failed && !rq->headers_done && rq->body_sent == 0 &&
        rq->tries < (r->service ? r->service->retries : 0)) {
        rq->tries++;
        gw_debug("request_id=%s retrying upstream connect (%d)", r->id, rq->tries);
        gw_headers_clear(r->response_headers);
        if (setup_transfer(rq) == 0) return;
    }
    if (rq->reply_started) {
        fail_stream(rq, gw_sprintf(r->arena, "upstream stream broke: %s", curl_err));
        return;
    }
    int status = 502;
    const char *msg;
    switch (result) {
    case CURLE_ABORTED_BY_CALLBACK:
        if (!rq->resend_refused) goto other;
        msg = gw_sprintf(r->arena,
                         "An invalid response was received from the upstream server: "
                         "it closed the connection without answering (%s is not sent twice)",
                         r->upstream_method ? r->upstream_method : r->method);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        status = 504;
        msg = "The upstream server is timing out";
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        status = 503; /* Kong's balancer answer for a DNS failure */
        msg = "name resolution failed";
        break;
    case CURLE_COULDNT_CONNECT:
        msg = gw_sprintf(r->arena,
                         "An invalid response was received from the upstream server: "
                         "failed to connect (%s)",
                         curl_err);
        break;
    case CURLE_OUT_OF_MEMORY:
        /* libcurl 7.88 says this when a response head passes its size
         * limit (about 100 KB per header); nothing else here runs out. */
        msg = rq->headers_done ? gw_sprintf(r->arena,
                                            "An invalid response was received from "
                                            "the upstream server: %s",
                                            curl_err)
                               : "An invalid response was received from the upstream server: "
                                 "response head too large";
        break;
    case CURLE_WRITE_ERROR:
        if (rq->upstream_bad)
            msg = gw_sprintf(r->arena,
                             "An invalid response was received from the upstream server: %s",
                             rq->upstream_bad);
        else
            msg = "The upstream response was too large to process";
        break;
    default:
    other:
        msg = gw_sprintf(r->arena, "An invalid response was received from the upstream server: %s",
                         curl_err);
    }
    gw_proxy_core_error(rq, status, msg);
}

/* --- starting the upstream transfer ----------------------------------- */

/* CURLOPT_READFUNCTION of a streamed request body: hands curl what the
 * client sent so far, pauses the upload when that is nothing yet. */
static size_t body_read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    struct proxy_request *rq = arg;
    int n = evbuffer_remove(rq->pub.body, buf, size * nitems);
    if (n > 0) {
        rq->body_sent += (uint64_t)n;
        rq->last_progress_us = gw_progress_now_us();
        /* With a declared length curl never asks past the last byte: the
         * upload is over once it has that byte (read_timeout from here). */
        if (rq->body_complete && evbuffer_get_length(rq->pub.body) == 0) rq->upload_done = 1;
        gw_conn_body_consumed(rq->conn);
        return (size_t)n;
    }
    if (rq->body_complete) {
        rq->upload_done = 1;
        rq->last_progress_us = gw_progress_now_us();
        return 0;
    }
    if (rq->client_gone || rq->body_bad) return CURL_READFUNC_ABORT;
    rq->upload_paused = 1;
    return CURL_READFUNC_PAUSE;
}

/* CURLOPT_HTTPHEADER only reads the list, and the list is ours: its nodes
 * and lines live in the request arena instead of two mallocs and two
 * frees per header through curl_slist_append (a dozen headers a request). */
static void append_upstream_line(struct proxy_request *rq, char *line)
{
    struct curl_slist *node = gw_alloc(rq->pub.arena, sizeof(*node));
    node->data = line;
    node->next = NULL;
    *rq->upstream_headers_tail = node;
    rq->upstream_headers_tail = &node->next;
}

static void add_upstream_header(struct proxy_request *rq, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    char *line = gw_alloc(rq->pub.arena, nl + vl + 3);
    memcpy(line, name, nl);
    if (vl == 0) { /* "Name:" alone tells libcurl to remove the field; "Name;" sends it empty */
        memcpy(line + nl, ";", 2);
    } else {
        line[nl] = ':';
        line[nl + 1] = ' ';
        memcpy(line + nl + 2, value, vl + 1);
    }
    append_upstream_line(rq, line);
}

/* The X-Forwarded-* fields sluice sets itself (Kong's); a client's own are
 * replaced, any other X-Forwarded-* of the client's goes on as it is. */
static int forwarded_set_by_us(const char *k)
{
    if (strncasecmp(k, "X-Forwarded-", 12) != 0) return 0;
    k += 12;
    return strcasecmp(k, "Proto") == 0 || strcasecmp(k, "Host") == 0 ||
           strcasecmp(k, "Port") == 0 || strcasecmp(k, "Path") == 0 || strcasecmp(k, "Prefix") == 0;
}

static void build_upstream_headers(struct proxy_request *rq)
{
    struct gw_request *r = &rq->pub;
    const char *connection = field_list(r->arena, r->headers, "Connection", 10);
    const char *xff = field_list(r->arena, r->headers, "X-Forwarded-For", 15);
    int has_accept = 0, has_type = 0;
    struct gw_header *kv;
    gw_headers_foreach(kv, r->headers)
    {
        const char *k = kv->name;
        if (is_hop_by_hop(k) || listed_in_connection(connection, k)) continue;
        if (strcasecmp(k, "Host") == 0 || strcasecmp(k, "Content-Length") == 0 ||
            strcasecmp(k, "Expect") == 0)
            continue;
        /* httpoxy (CVE-2016-5385): as Kong, never pass a client's Proxy. */
        if (strcasecmp(k, "X-Forwarded-For") == 0 || forwarded_set_by_us(k) ||
            strcasecmp(k, "X-Real-IP") == 0 || strcasecmp(k, "Proxy") == 0)
            continue;
        if (strcasecmp(k, "Accept") == 0) has_accept = 1;
        if (strcasecmp(k, "Content-Type") == 0) has_type = 1;
        add_upstream_header(rq, k, kv->value);
    }
    if (r->route && r->route->preserve_host) {
        const char *host = gw_headers_get(r->headers, "Host");
        if (host) add_upstream_header(rq, "Host", host);
    }
    add_upstream_header(rq, "X-Forwarded-For",
                        xff ? gw_sprintf(r->arena, "%s, %s", xff, r->client_ip) : r->client_ip);
    add_upstream_header(rq, "X-Real-IP", r->client_ip);
    add_upstream_header(rq, "X-Forwarded-Proto", r->tls ? "https" : "http");
    /* The client's host, lowercased and without the port (that goes in
     * X-Forwarded-Port), as Kong's $host. */
    if (*r->host) add_upstream_header(rq, "X-Forwarded-Host", r->host);
    char port[8];
    snprintf(port, sizeof(port), "%d", rq->local_port);
    add_upstream_header(rq, "X-Forwarded-Port", port);
    add_upstream_header(rq, "X-Forwarded-Path", r->path);
    if (rq->forwarded_prefix) add_upstream_header(rq, "X-Forwarded-Prefix", rq->forwarded_prefix);
    add_upstream_header(rq, "Via", rq->conn && rq->conn->minor == 0 ? "1.0 sluice" : "1.1 sluice");
    /* libcurl adds these unless told not to; a proxy must not invent them
     * (its Content-Type for a body is application/x-www-form-urlencoded). */
    if (!has_accept) append_upstream_line(rq, (char *)"Accept:");
    append_upstream_line(rq, (char *)"Expect:");
    /* A reply read by a plugin is decoded whatever its coding (see
     * upstream_decoded), but no coding is asked for: LLM replies are small,
     * and the header would cost libcurl ~6k instructions a request (its
     * printf engine writes heads a character at a time; callgrind). */
    if (r->upstream_decoded) append_upstream_line(rq, (char *)"Accept-Encoding:");
    const char *method = r->upstream_method ? r->upstream_method : r->method;
    int body = r->upstream_body || rq->json_dirty || !rq->body_complete ||
               evbuffer_get_length(r->body) > 0 || strcmp(method, "POST") == 0 ||
               strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
    if (!has_type && body) append_upstream_line(rq, (char *)"Content-Type:");
}

/* What every transfer sets alike, once per easy handle (they are reused). */
static void set_shared_options(struct gw_worker *w, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, gw_upstream_open_socket_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, w);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, gw_upstream_close_socket_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, w);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, connected_cb);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* No proxy from the environment: curl would getenv() several variables
     * per request, and a gateway's egress must not change with them. An
     * empty no-proxy list too: without one, curl reads no_proxy and
     * NO_PROXY from the environment for every transfer even with no proxy
     * (two getenv()s, each a walk over the whole environment). */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    /* A connection idle longer is not reused but closed (upstream.c). */
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, gw_upstream_maxage(w));
}

/* A URL the core built is its service's parsed origin plus path and query
 * (see snapshot.h); one a plugin set (ai-proxy's) is parsed once per
 * worker. Either way curl does not parse the whole URL per transfer. */
static void set_url(struct proxy_request *rq, CURL *e)
{
    struct gw_request *r = &rq->pub;
    /* A burst to an HTTPS upstream with no connection yet waits for the
     * first one to say whether it speaks h2, then multiplexes on it, instead
     * of a TLS handshake per request (RFC 9113 9.1: one connection per
     * host and port). Plain http:// is HTTP/1.1 here (CURL_HTTP_VERSION_2TLS)
     * and must not wait: libcurl would hold every request of the burst until
     * the first one's answer began (a whole LLM completion). */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, strncasecmp(r->upstream_url, "https:", 6) == 0 ? 1L : 0L);
    /* curl_url_set() lowercases %XX escapes, which the string parser keeps:
     * such URLs (rare) are handed over whole, so that the upstream gets the
     * bytes the client sent. (core_path has no dot segment left, and no
     * '#': upstream_url() and the fragment's removal saw to that.) */
    CURLU *base = r->upstream_url == rq->core_url && r->service && !strpbrk(rq->core_path, "%#") &&
                          (!r->query || !strpbrk(r->query, "%#"))
                      ? rq->snap->service_urls[r->service->index]
                      : NULL;
    CURLU *u = base ? curl_url_dup(base) : NULL;
    if (u && curl_url_set(u, CURLUPART_PATH, rq->core_path, 0) == CURLUE_OK &&
        (!r->query || curl_url_set(u, CURLUPART_QUERY, r->query, 0) == CURLUE_OK)) {
        /* Freed with the request, after gw_upstream_easy_put let go of it. */
        gw_arena_cleanup(r->arena, (gw_cleanup_fn)curl_url_cleanup, u);
        curl_easy_setopt(e, CURLOPT_CURLU, u);
        return;
    }
    if (u) curl_url_cleanup(u);
    CURLU *parsed = r->upstream_url != rq->core_url
                        ? gw_upstream_parsed_url(rq->worker, r->upstream_url)
                        : NULL;
    if (parsed) {
        curl_easy_setopt(e, CURLOPT_CURLU, parsed);
        return;
    }
    curl_easy_setopt(e, CURLOPT_CURLU, NULL);
    curl_easy_setopt(e, CURLOPT_URL, r->upstream_url);
}

/* RFC 9110 9.2.2; a method it does not name is taken as not idempotent. */
static int is_idempotent(const char *method)
{
    static const char *const idempotent[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
        if (strcmp(method, idempotent[i]) == 0) return 1;
    return 0;
}

/* Kong's ca_certificates and client_certificate of a service. The PEMs
 * live in the snapshot, which outlives the transfer (NOCOPY), and libcurl
 * copies them into each connection it makes; it also compares them when
 * it picks a kept-alive connection, so one made for another service's
 * CAs or client certificate is never reused for this one. */
static void set_upstream_tls(struct proxy_request *rq, CURL *e, const struct gw_service *svc)
{
    if (svc->ca_bundle) {
        /* These CAs only (Kong: "used to build the trust store"): the blob
         * takes the CA file's place, and Debian's libcurl would still read
         * its CA directory (/etc/ssl/certs) beside it. */
        struct curl_blob ca = {(void *)svc->ca_bundle, svc->ca_bundle_len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    const struct gw_certificate *cc = svc->client_certificate;
    if (cc) {
        struct curl_blob cert = {(void *)cc->cert, strlen(cc->cert), CURL_BLOB_NOCOPY};
        struct curl_blob key = {(void *)cc->key, strlen(cc->key), CURL_BLOB_NOCOPY};
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    rq->tls_blobs = 1;
}

static int setup_transfer(struct proxy_request *rq)
{
    struct gw_request *r = &rq->pub;
    struct gw_worker *w = rq->worker;
    CURL *e = rq->easy;
    int fresh;
    if (!e) {
        e = rq->easy = gw_upstream_easy_get(w, &fresh);
        if (!e) return -1;
        rq->upstream_headers_tail = &rq->upstream_headers;
        build_upstream_headers(rq);
    } else {
        gw_upstream_easy_put(w, e, rq->tls_blobs);
        rq->tls_blobs = 0;
        e = rq->easy = gw_upstream_easy_get(w, &fresh);
    }
    if (fresh) set_shared_options(w, e);
    set_url(rq, e);
    curl_easy_setopt(e, CURLOPT_PRIVATE, rq);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, rq);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, rq);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, rq->upstream_headers);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, rq);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
    /* "": decode every coding this libcurl knows (gzip, deflate, br, zstd);
     * its Accept-Encoding line is suppressed (build_upstream_headers). */
    if (r->upstream_decoded) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    long verify = r->service ? r->service->tls_verify : 1;
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    if (r->service && (r->service->ca_bundle || r->service->client_certificate))
        set_upstream_tls(rq, e, r->service);

    const char *method = r->upstream_method ? r->upstream_method : r->method;
    size_t body_len;
    const char *body = "";
    int streamed = 0;
    if (r->upstream_body) {
        body = r->upstream_body;
        body_len = r->upstream_body_len;
    } else if (rq->json_dirty && rq->json) {
        body = r->upstream_body = gw_json_print(r->arena, rq->json, &body_len);
        r->upstream_body_len = body_len;
    } else if (!rq->body_complete) {
        streamed = 1;
        body_len = 0;
    } else if ((body_len = evbuffer_get_length(r->body)) > 0) {
        /* libcurl sends a contiguous body with the headers in one write;
         * through the read callback it takes two sends and a poll. */
        body = (const char *)evbuffer_pullup(r->body, -1);
    }
    rq->upload_done = 1; /* no body, or a small one that leaves with the headers */
    if (streamed) {
        /* The body is still arriving: it goes as it comes, through the read
         * callback, with its length when the client gave one (chunked to
         * the upstream otherwise). */
        int64_t declared = rq->conn ? rq->conn->body_length : -1;
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, body_read_cb);
        curl_easy_setopt(e, CURLOPT_READDATA, rq);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(declared >= 0 ? declared : -1));
        if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        rq->upload_done = 0;
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        if (body_len > LARGE_BODY) {
            curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, upload_progress_cb);
            curl_easy_setopt(e, CURLOPT_XFERINFODATA, rq);
            rq->upload_done = 0;
            rq->uploaded = 0;
        }
        if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    rq->headers_done = 0;
    rq->upstream_connected = 0;
    rq->send_once = !is_idempotent(method);
    rq->resend_refused = 0;
    rq->last_progress_us = gw_progress_now_us();
    if (gw_upstream_add(w, e) < 0) return -1;
    rq->in_multi = 1;
    /* Neither headers nor query nor a userinfo password: they carry the
     * credentials plugins inject or a URL holds. */
    if (gw_log_threshold <= GW_LOG_DEBUG) {
        const char *shown = gw_url_masked(r->arena, r->upstream_url);
        gw_debug("request_id=%s upstream %s %.*s", r->id, method, (int)strcspn(shown, "?"), shown);
    }
    /* The first tick at the earliest deadline that can apply; each tick
     * then re-arms for the one of the current stage. */
    long first =
        r->read_timeout_ms < r->connect_timeout_ms ? r->read_timeout_ms : r->connect_timeout_ms;
    if (!rq->upload_done && r->write_timeout_ms < first) first = r->write_timeout_ms;
    struct timeval tv = {(time_t)(first / 1000), (suseconds_t)((first % 1000) * 1000)};
    evtimer_add(rq->timer, &tv);
    return 0;
}

static void start_upstream(struct proxy_request *rq)
{
    struct gw_request *r = &rq->pub;
    if (!r->upstream_url) {
        gw_proxy_core_error(rq, 503, "no Service found with those values");
        return;
    }
    if (rq->body_bad) {
        gw_proxy_core_error(rq, rq->body_bad_status, rq->body_bad);
        return;
    }
    rq->resp = evbuffer_new();
    r->t_upstream_start = gw_now_us();
    if (setup_transfer(rq) < 0) {
        gw_proxy_core_error(rq, 500, "An unexpected error occurred");
        return;
    }
}

/* --- access phase ------------------------------------------------------ */

static void alloc_contexts(struct proxy_request *rq)
{
    for (size_t i = 0; i < rq->chain.n; i++) {
        const struct gw_chain_entry *e = &rq->chain.v[i];
        if (e->inst->plugin->ctx_size && !rq->ctx[e->plugin_index])
            rq->ctx[e->plugin_index] = gw_calloc(rq->pub.arena, e->inst->plugin->ctx_size);
    }
}

/* After an auth plugin identified a consumer, consumer-scoped instances may
 * now apply: re-resolve, and go on with the plugins of lower priority. */
static void rechain_for_consumer(struct proxy_request *rq, int current_priority)
{
    struct gw_request *r = &rq->pub;
    gw_chain_resolve(rq->snap->cfg, r->route, r->service, r->consumer, r->arena, &rq->chain);
    alloc_contexts(rq);
    if (rq->chain.openai_errors) r->openai_errors = 1;
    size_t i = 0;
    while (i < rq->chain.n && rq->chain.v[i].inst->plugin->priority >= current_priority)
        i++;
    rq->access_next = i;
}

void gw_proxy_continue(struct proxy_request *rq)
{
    struct gw_request *r = &rq->pub;
    while (rq->access_next < rq->chain.n) {
        const struct gw_chain_entry *e = &rq->chain.v[rq->access_next++];
        const struct gw_plugin *p = e->inst->plugin;
        if (!p->access) continue;
        const struct gw_consumer *before = r->consumer;
        struct gw_arena *json_prev = gw_json_alloc_enter(r->arena);
        int rc = p->access(r, e->inst->conf, rq->ctx[e->plugin_index]);
        gw_json_alloc_leave(json_prev);
        if (rc == GW_AGAIN) {
            rq->suspended = 1;
            return;
        }
        if (rc == GW_DONE) {
            gw_proxy_send_early(rq);
            return;
        }
        if (rc != GW_OK) {
            gw_error("request_id=%s plugin %s failed in access", r->id, p->name);
            gw_proxy_core_error(rq, 500, "An unexpected error occurred");
            return;
        }
        if (r->consumer != before && rq->snap->has_consumer_plugins)
            rechain_for_consumer(rq, p->priority);
    }
    start_upstream(rq);
}

/* --- entry point -------------------------------------------------------- */

static const char *upstream_url(struct gw_request *r, size_t strip_len)
{
    const struct gw_service *s = r->service;
    const char *joined = gw_upstream_path(r->arena, r->route, s, r->path, strip_len);
    const char *parts[] = {s->origin, joined, r->query ? "?" : "", r->query ? r->query : ""};
    size_t lens[4], total = 1;
    for (int i = 0; i < 4; i++)
        total += lens[i] = strlen(parts[i]);
    char *url = gw_alloc(r->arena, total), *p = url;
    for (int i = 0; i < 4; i++) {
        memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    *p = '\0';
    struct proxy_request *rq = (struct proxy_request *)r;
    const char *path = joined;
    /* The request's part may still make a dot segment once joined: a route
     * prefix that does not end at a '/' (/public matches /public..), v0's
     * separator, a base path's trailing '/'. Resolve it as the upstream
     * would, and refuse a result that leaves the service's path. Nearly
     * always there is nothing to resolve, and nothing more is done. */
    const char *clean = gw_path_remove_dots(r->arena, path);
    if (clean != path) {
        if (!clean) return NULL;
        /* The service's own path, resolved too (it may have dots itself). */
        const char *sb = *s->base_path ? gw_path_remove_dots(r->arena, s->base_path) : "";
        size_t bl = sb ? strlen(sb) : 0;
        while (bl && sb[bl - 1] == '/')
            bl--;
        if (bl && (strncmp(clean, sb, bl) != 0 || (clean[bl] != '/' && clean[bl] != '\0')))
            return NULL;
        path = clean;
        url = gw_sprintf(r->arena, "%s%s%s%s", s->origin, clean, parts[2], parts[3]);
    }
    rq->core_url = url;
    rq->core_path = path;
    return url;
}

/* Kong: a route whose protocols leave out the one the request came in on
 * answers https_redirect_status_code (426, or a redirect to https). */
static int protocol_refused(struct proxy_request *rq)
{
    struct gw_request *r = &rq->pub;
    const char *proto = r->tls ? "https" : "http";
    const struct gw_strings *p = &r->route->protocols;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i], proto) == 0) return 0;
    long code = r->route->https_redirect_status_code;
    if (!r->tls && code != 426) {
        const char *host = gw_headers_get(r->headers, "Host");
        gw_headers_add(r->response_headers, "Location",
                       gw_sprintf(r->arena, "https://%s%s", host ? host : r->host, r->uri));
        gw_respond_message(r, (int)code, "Please use HTTPS protocol");
    } else {
        gw_respond_message(r, 426, "Please use HTTPS protocol");
        gw_headers_add(r->response_headers, "Connection", "Upgrade");
        gw_headers_add(r->response_headers, "Upgrade", "TLS/1.2, HTTP/1.1");
    }
    return 1;
}

/* "Host[:port]" lowercased without the port, into the arena. */
static const char *host_without_port(struct gw_arena *a, const char *host, size_t n)
{
    char *h = gw_strndup(a, host, n);
    char *colon = h[0] == '[' ? strchr(h, ']') : strrchr(h, ':');
    if (colon && h[0] == '[') colon = strchr(colon, ':');
    if (colon) *colon = '\0';
    for (char *p = h; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return h;
}

void gw_proxy_on_request(struct gw_conn *c, const struct gw_h1_head *head)
{
    struct gw_worker *w = c->worker;
    struct gw_arena *arena = gw_arena_new(GW_ARENA_CACHED_BLOCK);
    struct proxy_request *rq = gw_calloc(arena, sizeof(*rq));
    struct gw_request *r = &rq->pub;
    r->arena = arena;
    r->t_start = gw_now_us();
    rq->worker = w;
    rq->snap = w->snapshot;
    gw_snapshot_ref(rq->snap);
    rq->conn = c;
    c->current = rq;
    rq->local_port = c->local_port;
    atomic_fetch_add_explicit(&w->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->requests_total, 1, memory_order_relaxed);
    /* Events live in the arena: no malloc/free pair per request for them. */
    rq->timer = gw_alloc(arena, event_get_struct_event_size());
    evtimer_assign(rq->timer, w->base, timer_cb, rq);

    char *id = gw_alloc(arena, 33);
    gw_request_id_new(id);
    r->id = id;
    r->method = gw_strndup(arena, head->method, head->method_len);
    /* absolute-form (RFC 9112 §3.2.2): the authority replaces Host. */
    const char *target = head->target, *authority = NULL;
    size_t tlen = head->target_len, alen = 0;
    if ((tlen > 7 && strncasecmp(target, "http://", 7) == 0) ||
        (tlen > 8 && strncasecmp(target, "https://", 8) == 0)) {
        const char *p = memchr(target, ':', tlen) + 3, *end = target + tlen;
        authority = p;
        while (p < end && *p != '/' && *p != '?')
            p++;
        alen = (size_t)(p - authority);
        tlen = (size_t)(end - p);
        target = p;
    }
    /* origin-form starts with '/' (RFC 9112 3.2.1): "?x", "#f" and
     * OPTIONS's asterisk-form are refused, as nginx (and so Kong) does; an
     * absolute-form authority must be a host (no userinfo, not empty). */
    const char *bad = NULL;
    if (authority && (alen == 0 || !gw_h1_valid_host(authority, alen)))
        bad = "invalid authority in the request target";
    else if (!authority && (tlen == 0 || target[0] != '/'))
        bad = "The request target must be an absolute path";
    /* A fragment is not part of a request target (RFC 9112 §3.2); a client
     * that sends one anyway has it ignored, as nginx does. */
    const char *hash = memchr(target, '#', tlen);
    if (hash) tlen = (size_t)(hash - target);
    r->uri = tlen ? gw_strndup(arena, target, tlen) : "/";
    const char *q = strchr(r->uri, '?');
    if (q) {
        r->path = q == r->uri ? "/" : gw_strndup(arena, r->uri, (size_t)(q - r->uri));
        r->query = q + 1;
    } else {
        r->path = r->uri;
    }
    gw_headers_init(&rq->req_headers, arena);
    gw_headers_init(&rq->resp_headers, arena);
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct gw_h1_header *f = &head->headers[i];
        if (authority && gw_h1_name_is(f, "Host")) continue;
        gw_headers_add_parsed(&rq->req_headers, f->name, f->name_len, f->value, f->value_len);
    }
    if (authority) gw_headers_add_parsed(&rq->req_headers, "Host", 4, authority, alen);
    r->headers = &rq->req_headers;
    r->response_headers = &rq->resp_headers;
    /* The body buffer is the request's: log hooks may read it after the
     * connection has moved on to the next request. */
    r->body = evbuffer_new();
    c->body = r->body;
    gw_conn_absorb_body(c);
    rq->body_complete = c->body_done;
    /* Copied: the connection (and its peer string) may go before we do. */
    r->client_ip = gw_strdup(arena, c->peer);
    r->client_port = c->peer_port;
    r->server_port = c->local_port;
    r->tls = c->ssl != NULL;
    if (c->ssl) {
        const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
        char *low = gw_strdup(arena, sni ? sni : "");
        for (char *p = low; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        r->tls_sni = low;
    }
    r->connection = c->serial;
    r->connection_requests = ++c->requests;
    const char *host = gw_headers_get(r->headers, "Host");
    r->host = host ? host_without_port(arena, host, strlen(host)) : "";
    r->ai.cached_tokens = -1;
    r->ai.ttft_ms = -1;
    rq->ctx = gw_calloc(arena, gw_plugin_count() * sizeof(void *));

    /* Routes, plugins and the upstream all see the path with its dot
     * segments resolved (path_dots.h says why); the log keeps r->uri.
     * Only origin-form targets (absolute-form was reduced to it above): a
     * relative one would be joined to a service path unchecked. */
    const char *clean = NULL;
    if (!bad && (clean = gw_path_normalize(arena, r->path, &bad))) /* else bad says why */
        r->path = clean;

    struct gw_route_match m;
    if (bad || gw_router_match_at(rq->snap->router, r->method, r->host, r->server_port, r->tls_sni,
                                  r->path, r->headers, &m) < 0) {
        /* No route: the global plugins only. */
        rq->chain = rq->snap->global_chain;
        alloc_contexts(rq);
        if (bad) {
            gw_proxy_core_error(rq, 400, bad);
        } else {
            gw_respond_message(r, 404, "no Route matched with those values");
            gw_proxy_send_early(rq);
        }
        return;
    }
    r->route = m.route;
    r->service = m.route->service;
    rq->chain = rq->snap->route_chains[m.route->index];
    alloc_contexts(rq);
    if (rq->chain.openai_errors) r->openai_errors = 1;
    if (c->body_length > w->settings->max_body_size) {
        gw_proxy_core_error(rq, 413, "Request body is too large");
        return;
    }
    if (m.route->protocols.n && protocol_refused(rq)) {
        gw_proxy_send_early(rq);
        return;
    }
    if (r->service) {
        r->upstream_url = upstream_url(r, m.strip_len);
        /* Kong: X-Forwarded-Prefix is the matched path prefix, unless "/". */
        if (r->route->n_paths && m.strip_len > 1)
            rq->forwarded_prefix = gw_strndup(arena, r->path, m.strip_len);
        if (!r->upstream_url) {
            gw_proxy_core_error(rq, 400, "The request path leaves the service's path ('..')");
            return;
        }
        r->connect_timeout_ms = r->service->connect_timeout;
        r->read_timeout_ms = r->service->read_timeout;
        r->write_timeout_ms = r->service->write_timeout;
    } else {
        r->connect_timeout_ms = r->read_timeout_ms = r->write_timeout_ms = 60000;
    }
    if (!rq->body_complete) {
        /* A plugin that reads the body gets it whole, and so does a small
         * body of known length (as nginx buffers request bodies): clients
         * often send the head and the body in two segments, and streaming
         * a few bytes costs curl a send, a poll and a loop pass more than
         * sending head and body together (strace of the TTFT bench). A
         * larger or chunked body streams while the client sends it. */
        rq->waiting_body = rq->chain.needs_body || rq->snap->consumer_needs_body ||
                           r->route->request_buffering || strcmp(r->method, "HEAD") == 0 ||
                           (c->body_length > 0 && c->body_length <= LARGE_BODY);
        gw_conn_want_body(c, !rq->waiting_body);
        if (rq->waiting_body) return;
    }
    gw_proxy_continue(rq);
}

void gw_proxy_on_body(struct proxy_request *rq)
{
    struct gw_conn *c = rq->conn;
    if (!c || rq->finished) return;
    const char *bad = NULL;
    int status = 400;
    if (c->body_error) {
        bad = "The request body is not valid chunked encoding";
    } else if (c->body_received > (uint64_t)rq->worker->settings->max_body_size) {
        bad = "Request body is too large";
        status = 413;
    }
    if (bad) {
        rq->body_bad = bad;
        rq->body_bad_status = status;
        if (rq->suspended) return; /* answered when the plugin resumes */
        if (rq->in_multi) {
            gw_upstream_remove(rq->worker, rq->easy);
            rq->in_multi = 0;
        }
        if (rq->reply_started)
            fail_stream(rq, bad);
        else
            gw_proxy_core_error(rq, status, bad);
        return;
    }
    if (c->body_done) rq->body_complete = 1;
    if (rq->waiting_body) {
        if (!rq->body_complete) return;
        rq->waiting_body = 0;
        gw_proxy_continue(rq);
        return;
    }
    if (rq->upload_paused) {
        /* The upstream's write_timeout starts again from the client's bytes. */
        rq->upload_paused = 0;
        rq->last_progress_us = gw_progress_now_us();
        update_pause(rq);
    }
}
