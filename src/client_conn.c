/*
 * Client connections: accept, read and parse requests, frame answers,
 * keep-alive, pipelining, timeouts, lingering close. See client_conn.h for
 * why this exists and how it divides the work with proxy.c.
 *
 * One connection, four events, all inside the struct (no malloc each):
 *   rev    EV_READ|EV_PERSIST for the whole life of the connection, so a
 *          client that leaves is seen at once, even mid-exchange;
 *   cev    EV_CLOSED in rev's place while reading is paused (backpressure),
 *          so a client that leaves then is seen at once too;
 *   wev    EV_WRITE, armed only while the socket refuses output;
 *   timer  the client timeout (only while we wait on the client), and the
 *          deferred free of a dead connection.
 * Nothing here frees a connection from inside a call the proxy made: a
 * dead connection is freed from its own timer callback.
 *
 * On a TLS listener the same events watch the socket and conn_recv /
 * tls_send go through OpenSSL (tls.c); the handshake is done by the first
 * reads. Two things differ: OpenSSL may hold decrypted bytes the socket no
 * longer shows (the read event is made active by hand for them), and a
 * read may have to wait for the socket to take output, or a write for
 * input (flags tls_read_wants_write / tls_write_wants_read).
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "client_conn.h"
#include "gw_arena.h"
#include "gw_headers.h"
#include "gw_json.h"
#include "gw_log.h"
#include "http1.h"
#include "gw_num_text.h"
#include "proxy.h"
#include "request_id.h"
#include "tls.h"
#include "worker.h"

#define MAX_HEAD GW_CONN_READ_BUF
#define MAX_HEADERS 100
/* A streamed request body the upstream has not taken yet: above this we
 * stop reading the client (TCP then slows it down for us). */
#define BODY_HIGH_WATER (256 * 1024)
#define BODY_LOW_WATER (64 * 1024)
/* An answer that went out before the body was read: we read and drop at
 * most this much of the body to keep the connection, else we close. */
#define MAX_DISCARD (1024 * 1024)
#define LINGER_SECONDS 2
/* The most handed to one TLS write: one full record. */
#define TLS_WRITE_MAX 16384

enum { REPLY_FIXED = 0, REPLY_CHUNKED = 1, REPLY_UNTIL_CLOSE = 2 };

static void conn_write(struct gw_conn *c);
static void conn_process(struct gw_conn *c);
static void conn_close_later(struct gw_conn *c);

/* --- life and death ----------------------------------------------------- */

static void closed_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    if (!c->dead && !c->lingering) conn_close_later(c);
}

/* Reading stops (backpressure, or a full pipeline buffer). A client that
 * leaves meanwhile would go unnoticed until a timeout: EPOLLRDHUP tells us
 * without reading. */
static void pause_reading(struct gw_conn *c)
{
    if (c->read_paused) return;
    c->read_paused = 1;
    event_del(&c->rev);
    if (event_base_get_features(c->worker->base) & EV_FEATURE_EARLY_CLOSE) event_add(&c->cev, NULL);
}

static void resume_reading(struct gw_conn *c)
{
    if (!c->read_paused) return;
    c->read_paused = 0;
    event_del(&c->cev);
    event_add(&c->rev, NULL);
    /* Bytes OpenSSL decrypted before the pause: the socket will not wake
     * us for them. */
    if (c->ssl && SSL_pending(c->ssl) > 0) event_active(&c->rev, EV_READ, 1);
}

static void conn_free(struct gw_conn *c)
{
    struct gw_worker *w = c->worker;
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->cev);
    event_del(&c->timer);
    if (c->ssl) {
        if (!c->lingering) gw_tls_close(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);
    if (c->out) evbuffer_free(c->out);
    if (c->in != w->read_buf) free(c->in);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    atomic_fetch_sub_explicit(&w->connections, 1, memory_order_relaxed);
    free(c);
}

/* Input is read into the worker's buffer; a connection keeps bytes of its
 * own only when some are left over after processing (a head cut by the
 * read, a pipelined request). An idle keep-alive connection thus holds no
 * input buffer at all: about 1 KiB (its struct with four events, an empty
 * output buffer) instead of a 64 KiB read buffer each. */
static void conn_release_input(struct gw_conn *c)
{
    char *shared = c->worker->read_buf;
    size_t left = c->in_len - c->in_pos;
    if (left == 0 || c->dead) {
        if (c->in != shared) free(c->in);
        c->in = NULL;
        c->in_cap = c->in_len = c->in_pos = 0;
        return;
    }
    if (c->in != shared) return;
    size_t cap = left <= 8192 ? 8192 : MAX_HEAD;
    char *own = malloc(cap);
    if (!own) {
        c->in = NULL;
        c->in_cap = c->in_len = c->in_pos = 0;
        conn_close_later(c);
        return;
    }
    memcpy(own, c->in + c->in_pos, left);
    c->in = own;
    c->in_cap = cap;
    c->in_pos = 0;
    c->in_len = left;
}

/* Ends the connection now for the proxy's purposes (the request hears the
 * client is gone) and frees it from the loop. Safe anywhere. */
static void conn_close_later(struct gw_conn *c)
{
    if (c->dead) return;
    c->dead = 1;
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->cev);
    struct proxy_request *rq = c->current;
    c->current = NULL;
    c->body = NULL; /* the request's */
    if (rq) gw_proxy_on_client_gone(rq);
    event_del(&c->timer);
    event_active(&c->timer, EV_TIMEOUT, 1);
}

/* Closing with bytes of the client's still unread would make the kernel
 * send a reset, which can destroy the answer in flight: half-close, read
 * and drop until the client closes too, for a moment at most (nginx's
 * lingering close). */
static void conn_close_gracefully(struct gw_conn *c)
{
    if (c->dead) return;
    int unread = c->linger || c->in_pos < c->in_len || (c->in_request && !c->body_done);
    if (!unread) {
        conn_close_later(c);
        return;
    }
    if (c->ssl) gw_tls_close(c->ssl); /* close_notify before the FIN */
    shutdown(c->fd, SHUT_WR);
    c->lingering = 1;
    c->current = NULL;
    resume_reading(c);
    struct timeval tv = {LINGER_SECONDS, 0};
    event_add(&c->timer, &tv);
}

/* Are we waiting for something from the client? Then its timeout runs. */
static void conn_rearm_timer(struct gw_conn *c)
{
    if (c->dead || c->lingering) return;
    if (!c->in_request || (!c->body_done && !c->read_paused) || c->writing)
        event_add(&c->timer, c->worker->client_timeout);
    else
        event_del(&c->timer);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    if (c->dead || c->lingering) {
        conn_free(c);
        return;
    }
    /* Idle keep-alive, a head or body that does not come, or output the
     * client does not take: all the same to us. */
    if (c->in_request && c->current)
        gw_debug("client %s:%d timed out mid-exchange", c->peer, c->peer_port);
    conn_close_later(c);
}

/* The exchange is over on both sides: keep the connection for the next one
 * or close it. */
static void finish_exchange(struct gw_conn *c)
{
    if (!c->keep_alive || c->worker->draining) {
        conn_close_gracefully(c);
        return;
    }
    c->in_request = 0;
    c->reply_done = 0;
    c->reply_mode = REPLY_FIXED;
    c->body_done = 0;
    if (c->in_pos == c->in_len) conn_release_input(c);
    resume_reading(c);
    conn_rearm_timer(c);
    /* A pipelined request already read: parse it from the loop, not from
     * inside whatever call of the proxy's brought us here. */
    if (c->in_pos < c->in_len) event_active(&c->rev, EV_READ, 1);
}

static void maybe_finish_exchange(struct gw_conn *c)
{
    if (c->dead || !c->in_request || c->current || !c->reply_done) return;
    if (evbuffer_get_length(c->out) || c->writing) return;
    if (c->body_done || !c->keep_alive) finish_exchange(c);
}

/* --- writing ------------------------------------------------------------ */

/* The TLS form of evbuffer_write: one record's worth of the output's
 * first bytes (made contiguous: OpenSSL encrypts from one buffer, so the
 * copy costs little beside it). After GW_TLS_AGAIN the next call hands
 * over the same first bytes and at least as many, as OpenSSL requires of a
 * retried write (the buffer may move: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
static int tls_send(struct gw_conn *c)
{
    size_t len = evbuffer_get_length(c->out);
    if (len > TLS_WRITE_MAX) len = TLS_WRITE_MAX;
    const unsigned char *p = evbuffer_pullup(c->out, (ev_ssize_t)len);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    int want_write;
    ssize_t n = gw_tls_write(c->ssl, p, len, &want_write);
    if (n > 0) {
        evbuffer_drain(c->out, (size_t)n);
        return (int)n;
    }
    if (n == GW_TLS_AGAIN && !want_write) {
        /* The write waits for the peer's bytes (a TLS 1.2 peer's alert,
         * TLS 1.3 key update): the read event calls us again, waiting for
         * EPOLLOUT would spin. */
        c->tls_write_wants_read = 1;
        errno = EINPROGRESS;
        return -1;
    }
    errno = n == GW_TLS_AGAIN ? EAGAIN : EPIPE;
    return -1;
}

/* Writes what the socket takes now; waits for EPOLLOUT only if it is full. */
static void conn_write(struct gw_conn *c)
{
    if (c->dead) return;
    int was_writing = c->writing;
    while (evbuffer_get_length(c->out)) {
        int n = c->ssl ? tls_send(c) : evbuffer_write(c->out, c->fd);
        if (n < 0) {
            if (errno == EINPROGRESS) {
                conn_rearm_timer(c);
                return;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                if (!c->writing) {
                    c->writing = 1;
                    event_add(&c->wev, NULL);
                }
                conn_rearm_timer(c);
                return;
            }
            conn_close_later(c);
            return;
        }
    }
    if (c->writing) {
        c->writing = 0;
        if (!c->tls_read_wants_write) event_del(&c->wev); /* else write_cb resumes the read */
        conn_rearm_timer(c);
    }
    if (c->reply_done) {
        maybe_finish_exchange(c);
    } else if (was_writing && c->current) {
        gw_proxy_on_drained(c->current);
    }
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    if (c->dead) return;
    if (c->tls_read_wants_write) {
        /* The socket takes output again: the TLS read can go on (from the
         * loop, as any read). */
        c->tls_read_wants_write = 0;
        if (!c->writing) {
            event_del(&c->wev);
            event_active(&c->rev, EV_READ, 1);
            return;
        }
        event_active(&c->rev, EV_READ, 1);
    }
    conn_write(c);
    if (c->writing && !c->dead) conn_rearm_timer(c); /* progress restarts the timeout */
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return status < 300   ? "OK"
           : status < 400 ? "Redirect"
           : status < 500 ? "Client Error"
                          : "Server Error";
}

/* "Date: ..." formatted once a second per thread, not per answer. */
static const char *date_value(void)
{
    static _Thread_local time_t cached_at;
    static _Thread_local char value[40];
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(value, sizeof(value), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_at = now;
    }
    return value;
}

static int has_token(const char *list, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == n && strncasecmp(s, token, n) == 0) return 1;
    }
    return 0;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The status line and headers, serialised into one reserved extent of
 * `out`: one pass to size it, one to fill it, no printf. content_length
 * >= 0 adds that header (whole answers); -1 keeps the caller's. -1 when
 * `out` cannot take the head: the caller closes the connection, as a body
 * without its head would be read as garbage. */
static int write_head(struct gw_conn *c, int status, const struct gw_headers *headers, int no_body,
                      long long content_length)
{
    const char *connection = NULL, *length = NULL;
    int has_date = 0;
    size_t need = 64;
    const struct gw_header *kv;
    gw_headers_foreach(kv, headers)
    {
        need += kv->name_len + kv->value_len + 4;
        switch (kv->name[0] | 0x20) {
        case 'c':
            if (gw_header_is(kv, "Connection", 10)) connection = kv->value;
            if (gw_header_is(kv, "Content-Length", 14)) length = kv->value;
            break;
        case 'd':
            if (gw_header_is(kv, "Date", 4)) has_date = 1;
            break;
        }
    }
    if (connection && has_token(connection, "close")) c->keep_alive = 0;
    if (c->worker->draining) c->keep_alive = 0;
    /* The body not read yet: discarding it is worth it only when it is
     * small and the client is sending it. */
    if (!c->body_done && (c->expect_100 && !c->sent_100)) c->keep_alive = 0;
    if (!c->body_done && (c->chunked || (uint64_t)c->body_length - c->body_received > MAX_DISCARD))
        c->keep_alive = 0;

    if (no_body) {
        c->reply_mode = REPLY_FIXED;
    } else if (content_length >= 0 || length) {
        c->reply_mode = REPLY_FIXED;
    } else if (c->minor >= 1) {
        c->reply_mode = REPLY_CHUNKED;
    } else {
        c->reply_mode = REPLY_UNTIL_CLOSE;
        c->keep_alive = 0;
    }
    if (connection) need += strlen(connection);
    need += 128; /* Date, Connection, Transfer-Encoding, Content-Length */

    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->out, (ev_ssize_t)need, &v, 1) < 1) return -1;
    char *p = v.iov_base;
    const char *reason = reason_phrase(status);
    char code[4] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};
    p = put(p, "HTTP/1.1 ", 9);
    p = put(p, code, 4);
    p = put(p, reason, strlen(reason));
    p = put(p, "\r\n", 2);
    gw_headers_foreach(kv, headers)
    {
        switch (kv->name[0] | 0x20) {
        case 'c':
            if (gw_header_is(kv, "Connection", 10)) continue;
            if (content_length >= 0 && gw_header_is(kv, "Content-Length", 14)) continue;
            break;
        case 'k':
            if (gw_header_is(kv, "Keep-Alive", 10)) continue;
            break;
        case 't':
            if (gw_header_is(kv, "Transfer-Encoding", 17)) continue;
            break;
        }
        p = put(p, kv->name, kv->name_len);
        p = put(p, ": ", 2);
        p = put(p, kv->value, kv->value_len);
        p = put(p, "\r\n", 2);
    }
    if (!has_date) {
        p = put(p, "Date: ", 6);
        const char *d = date_value();
        p = put(p, d, strlen(d));
        p = put(p, "\r\n", 2);
    }
    if (content_length >= 0 && !no_body) {
        char digits[24];
        const char *d = gw_u64_text(digits, (uint64_t)content_length);
        p = put(p, "Content-Length: ", 16);
        p = put(p, d, strlen(d));
        p = put(p, "\r\n", 2);
    }
    if (c->reply_mode == REPLY_CHUNKED) p = put(p, "Transfer-Encoding: chunked\r\n", 28);
    if (connection) {
        /* Kept for its other tokens (Upgrade on a 426). */
        p = put(p, "Connection: ", 12);
        p = put(p, connection, strlen(connection));
        if (!c->keep_alive && !has_token(connection, "close")) p = put(p, ", close", 7);
        p = put(p, "\r\n", 2);
    } else if (!c->keep_alive) {
        p = put(p, "Connection: close\r\n", 19);
    } else if (c->minor == 0) {
        p = put(p, "Connection: keep-alive\r\n", 24);
    }
    p = put(p, "\r\n", 2);
    v.iov_len = (size_t)(p - (char *)v.iov_base);
    return evbuffer_commit_space(c->out, &v, 1);
}

/* The answer is handed over: the request no longer hears from us. A body
 * still arriving is read and dropped, so reading resumes if backpressure
 * had stopped it (nobody else would resume it). */
static void conn_detach(struct gw_conn *c)
{
    c->current = NULL;
    c->body = NULL; /* the request's */
    if (!c->body_done && !c->body_error && !c->dead) resume_reading(c);
    conn_rearm_timer(c);
}

void gw_conn_reply_head(struct gw_conn *c, int status, const struct gw_headers *headers,
                        int no_body)
{
    if (!c || c->dead || c->reply_done) return;
    if (write_head(c, status, headers, no_body, -1) < 0) {
        gw_error("client %s:%d: no room for the answer's head: closing", c->peer, c->peer_port);
        conn_close_later(c); /* the request hears the client is gone */
        return;
    }
    /* Not written yet: the first body bytes usually come in the same read
     * from the upstream and then leave with the head in one writev. If
     * they do not, the head goes at the end of this loop iteration. */
    if (!c->writing) event_active(&c->wev, EV_WRITE, 1);
}

void gw_conn_reply_body(struct gw_conn *c, struct evbuffer *data)
{
    if (!c || c->dead || c->reply_done) {
        if (data) evbuffer_drain(data, evbuffer_get_length(data));
        return;
    }
    size_t n = evbuffer_get_length(data);
    if (!n) return;
    if (c->reply_mode == REPLY_CHUNKED) {
        /* The chunk-size line, in hex, without printf (one per chunk). */
        char size[24], *p = size + sizeof(size);
        *--p = '\n';
        *--p = '\r';
        do {
            *--p = "0123456789abcdef"[n & 15];
            n >>= 4;
        } while (n);
        evbuffer_add(c->out, p, (size_t)(size + sizeof(size) - p));
        evbuffer_add_buffer(c->out, data);
        evbuffer_add(c->out, "\r\n", 2);
    } else {
        evbuffer_add_buffer(c->out, data);
    }
    if (!c->writing) conn_write(c);
}

void gw_conn_reply_end(struct gw_conn *c)
{
    if (!c || c->dead || c->reply_done) return;
    if (c->reply_mode == REPLY_CHUNKED) evbuffer_add(c->out, "0\r\n\r\n", 5);
    c->reply_done = 1;
    conn_detach(c);
    if (!c->writing) conn_write(c);
}

void gw_conn_reply(struct gw_conn *c, int status, const struct gw_headers *headers,
                   struct evbuffer *body, int no_body)
{
    if (!c || c->dead || c->reply_done) return;
    size_t n = body ? evbuffer_get_length(body) : 0;
    if (write_head(c, status, headers, no_body, no_body ? -1 : (long long)n) < 0) {
        gw_error("client %s:%d: no room for the answer's head: closing", c->peer, c->peer_port);
        /* The answer was handed over: its request does not hear of this. */
        c->current = NULL;
        c->body = NULL;
        conn_close_later(c);
        return;
    }
    if (n && !no_body) evbuffer_add_buffer(c->out, body);
    c->reply_done = 1;
    conn_detach(c);
    if (!c->writing) conn_write(c);
}

void gw_conn_reply_abort(struct gw_conn *c)
{
    if (!c || c->dead) return;
    c->keep_alive = 0;
    c->reply_done = 1;
    conn_detach(c);
    if (!c->writing) conn_write(c);
}

size_t gw_conn_pending(const struct gw_conn *c)
{
    return c && !c->dead ? evbuffer_get_length(c->out) : 0;
}

/* An error found before any request exists (unparsable head, head too
 * large, bad framing): a JSON answer with a request id, a log line, and
 * the connection closes, since we cannot know where the next request
 * would start. */
static void reply_error(struct gw_conn *c, int status, const char *why)
{
    char id[33];
    gw_request_id_new(id);
    /* `why` is a static message of ours, escaped all the same so that no
     * message can break the JSON; n is clamped as snprintf may cut. */
    char esc[256], json[320];
    if (gw_json_escaped_len(why) < sizeof(esc)) {
        *gw_json_escape_to(esc, why) = '\0';
    } else {
        strcpy(esc, "malformed request");
    }
    int n = snprintf(json, sizeof(json), "{\"message\":\"%s\",\"request_id\":\"%s\"}", esc, id);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof(json)) n = (int)sizeof(json) - 1;
    /* The access line of a request that never became one: the same level
     * (scanners send many; --log-level warn must silence them too). */
    gw_info("request_id=%s client=%s status=%d error=\"%s\"", id, c->peer, status, why);
    struct gw_arena *a = gw_arena_new(0);
    struct gw_headers h;
    gw_headers_init(&h, a);
    gw_headers_add_ref(&h, "Content-Type", 12, "application/json; charset=utf-8", 31);
    gw_headers_add_ref(&h, "X-Sluice-Request-Id", 19, id, 32);
    struct evbuffer *b = gw_oom_check(evbuffer_new());
    evbuffer_add(b, json, (size_t)n);
    /* Whatever else was read is dropped; what the client still sends is
     * read and dropped until it closes (lingering close), so that the
     * answer is not lost to a reset. */
    c->in_request = 1;
    c->body_done = 1;
    c->in_pos = c->in_len;
    c->linger = 1;
    c->chunked = 0;
    c->expect_100 = 0;
    c->minor = 1;
    c->keep_alive = 0;
    c->current = NULL;
    gw_conn_reply(c, status, &h, b, 0);
    evbuffer_free(b);
    gw_arena_free(a);
}

/* --- reading ------------------------------------------------------------ */

static int parse_length(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int value_is(const struct gw_h1_header *h, const char *s)
{
    size_t n = strlen(s);
    return h->value_len == n && strncasecmp(h->value, s, n) == 0;
}

/* Connection tokens of one header line. */
static void connection_tokens(const struct gw_h1_header *h, int *close, int *keep)
{
    const char *p = h->value, *end = h->value + h->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t n = (size_t)(e - s);
        if (n == 5 && strncasecmp(s, "close", 5) == 0) *close = 1;
        if (n == 10 && strncasecmp(s, "keep-alive", 10) == 0) *keep = 1;
    }
}

/* A head at c->in[in_pos...]: 1 when a request started (or an error was
 * answered), 0 when more bytes are needed. */
static int parse_head(struct gw_conn *c)
{
    struct gw_h1_header hdrs[MAX_HEADERS];
    struct gw_h1_head h = {.headers = hdrs};
    const char *p = c->in + c->in_pos;
    size_t avail = c->in_len - c->in_pos;
    int n = gw_h1_parse_head(p, avail, &h, MAX_HEADERS);
    if (n == GW_H1_PARTIAL) {
        if (avail >= MAX_HEAD) {
            /* Still inside the request line: the target is what is too long
             * (RFC 9112 3: 414), else the fields are (431). */
            size_t lead = 0; /* the empty lines RFC 9112 2.2 lets a client send first */
            while (lead < avail && (p[lead] == '\r' || p[lead] == '\n'))
                lead++;
            if (!memchr(p + lead, '\n', avail - lead))
                reply_error(c, 414, "URI Too Long");
            else
                reply_error(c, 431, "Request header fields too large");
            return 1;
        }
        return 0;
    }
    if (n == GW_H1_ERROR) {
        if (h.error && strcmp(h.error, "too many header fields") == 0)
            reply_error(c, 431, "Request header fields too large: too many header fields");
        else if (h.error == GW_H1_UNSUPPORTED_VERSION)
            reply_error(c, 505, h.error);
        else
            reply_error(c, 400, h.error ? h.error : "malformed request");
        return 1;
    }
    int64_t clen = -1;
    int chunked = 0, close = 0, keep = 0, expect = 0, hosts = 0;
    for (size_t i = 0; i < h.n_headers; i++) {
        const struct gw_h1_header *f = &hdrs[i];
        switch (f->name_len) {
        case 4:
            if (gw_h1_name_is(f, "Host")) {
                /* RFC 9110 7.2: an invalid Host value is a 400, never a
                 * route key or a Host forwarded with preserve_host. */
                if (!gw_h1_valid_host(f->value, f->value_len)) {
                    reply_error(c, 400, "invalid Host header");
                    return 1;
                }
                hosts++;
            }
            break;
        case 6:
            if (gw_h1_name_is(f, "Expect")) {
                if (!value_is(f, "100-continue")) {
                    reply_error(c, 417, "Expectation Failed: only 100-continue is supported");
                    return 1;
                }
                expect = 1;
            }
            break;
        case 10:
            if (gw_h1_name_is(f, "Connection")) connection_tokens(f, &close, &keep);
            break;
        case 14:
            if (gw_h1_name_is(f, "Content-Length")) {
                int64_t v;
                if (parse_length(f->value, f->value_len, &v) < 0 || (clen >= 0 && v != clen)) {
                    reply_error(c, 400, "invalid Content-Length");
                    return 1;
                }
                clen = v;
            }
            break;
        case 17:
            if (gw_h1_name_is(f, "Transfer-Encoding")) {
                if (chunked || !value_is(f, "chunked")) {
                    reply_error(c, 501, "unsupported Transfer-Encoding: only chunked is");
                    return 1;
                }
                chunked = 1;
            }
            break;
        }
    }
    /* Both framings at once is how requests are smuggled past proxies. */
    if (chunked && clen >= 0) {
        reply_error(c, 400, "both Content-Length and Transfer-Encoding");
        return 1;
    }
    if (chunked && h.minor == 0) {
        reply_error(c, 400, "chunked Transfer-Encoding in an HTTP/1.0 request");
        return 1;
    }
    if (hosts > 1 || (h.minor == 1 && hosts == 0)) {
        reply_error(c, 400, hosts ? "more than one Host header" : "missing Host header");
        return 1;
    }
    if (h.method_len == 7 && memcmp(h.method, "CONNECT", 7) == 0) {
        reply_error(c, 405, "CONNECT is not supported");
        return 1;
    }
    /* TRACE would echo the request, cookies and credentials included, back
     * to whoever can make a browser send it (cross-site tracing): nginx,
     * and so Kong, answer 405. */
    if (h.method_len == 5 && memcmp(h.method, "TRACE", 5) == 0) {
        reply_error(c, 405, "TRACE is not supported");
        return 1;
    }

    c->minor = h.minor;
    c->keep_alive = h.minor >= 1 ? !close : (keep && !close);
    c->chunked = (unsigned)chunked;
    c->body_length = chunked ? -1 : clen > 0 ? clen : 0;
    c->body_left = clen > 0 ? (uint64_t)clen : 0;
    c->body_received = 0;
    c->body_done = !chunked && clen <= 0;
    c->body_error = 0;
    memset(&c->chunk, 0, sizeof(c->chunk));
    c->expect_100 = (unsigned)(expect && !c->body_done && h.minor >= 1);
    c->sent_100 = 0;
    c->stream_body = 0;
    c->in_request = 1;
    c->reply_done = 0;
    c->reply_mode = REPLY_FIXED;
    /* The head stays in memory while the proxy copies it: nothing reads
     * into the buffer before this returns. */
    c->in_pos += (size_t)n;
    conn_rearm_timer(c);
    gw_proxy_on_request(c, &h);
    return 1;
}

/* Body bytes decoded: to the request, or dropped after an early answer. */
static void body_arrived(struct gw_conn *c, size_t n)
{
    c->body_received += n;
    if (c->current && c->body) {
        if (c->stream_body && !c->body_done && evbuffer_get_length(c->body) > BODY_HIGH_WATER)
            pause_reading(c);
        conn_rearm_timer(c);
        gw_proxy_on_body(c->current);
        return;
    }
    if (c->body_received > MAX_DISCARD && !c->body_done) {
        c->keep_alive = 0;
    }
    conn_rearm_timer(c);
    maybe_finish_exchange(c);
}

static void feed_body(struct gw_conn *c)
{
    char *p = c->in + c->in_pos;
    size_t avail = c->in_len - c->in_pos;
    if (!c->chunked) {
        size_t take = avail < c->body_left ? avail : (size_t)c->body_left;
        if (c->current && c->body) evbuffer_add(c->body, p, take);
        c->in_pos += take;
        c->body_left -= take;
        if (!c->body_left) c->body_done = 1;
        body_arrived(c, take);
        return;
    }
    size_t data_len = 0, consumed = 0;
    int rc = gw_h1_decode_chunked(&c->chunk, p, avail, &data_len, &consumed);
    if (rc == GW_H1_ERROR) {
        c->body_error = 1;
        c->body_done = 1;
        c->keep_alive = 0;
        c->linger = 1;
        c->in_pos = c->in_len;
        event_del(&c->rev); /* nothing after a broken body can be trusted */
        c->read_paused = 1;
        if (c->current)
            gw_proxy_on_body(c->current);
        else
            maybe_finish_exchange(c);
        return;
    }
    if (c->current && c->body && data_len) evbuffer_add(c->body, p, data_len);
    c->in_pos += consumed;
    if (rc == 1) c->body_done = 1;
    body_arrived(c, data_len);
}

/* Everything that can be done with the bytes buffered so far. */
static void conn_process(struct gw_conn *c)
{
    while (!c->dead && !c->lingering) {
        if (!c->in_request) {
            if (c->in_pos == c->in_len) return;
            if (!parse_head(c)) return;
            continue;
        }
        if (!c->body_done && !c->body_error) {
            if (c->in_pos == c->in_len) return;
            feed_body(c);
            continue;
        }
        return; /* the rest belongs to the next request */
    }
}

/* http:// for https://, the usual slip: say so, as nginx does (for any
 * method: it looks at the first byte, where OpenSSL knows only GET, POST,
 * HEAD and PUT), rather than reset a connection the client cannot make
 * sense of. The reply to HEAD has no content (RFC 9110 9.3.2). */
#define PLAIN_HTTP_BODY "{\"message\":\"The plain HTTP request was sent to HTTPS port\"}"
_Static_assert(sizeof(PLAIN_HTTP_BODY) - 1 == 59, "Content-Length below");
static ssize_t plain_http_on_tls(struct gw_conn *c, const unsigned char *head, size_t n)
{
    static const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                                "Content-Length: 59\r\nConnection: close\r\n\r\n" PLAIN_HTTP_BODY;
    size_t head_len = sizeof(reply) - sizeof(PLAIN_HTTP_BODY);
    int is_head = n >= 5 && memcmp(head, "HEAD ", 5) == 0;
    gw_debug("client %s:%d: plain HTTP on a TLS listener", c->peer, c->peer_port);
    ssize_t sent = write(c->fd, reply, is_head ? head_len : sizeof(reply) - 1);
    (void)sent; /* a fresh socket takes 160 bytes; if not, the client is gone */
    c->linger = 1;
    errno = EPROTO;
    return -2;
}

/* read(2) on the connection, through TLS on a TLS listener; -2 when a
 * plain HTTP request came to it (answered here: close gracefully). */
static ssize_t conn_recv(struct gw_conn *c, void *buf, size_t len)
{
    if (!c->ssl) return read(c->fd, buf, len);
    if (!c->tls_sniffed) {
        /* A TLS connection starts with a handshake record (0x16), or an
         * SSLv2-style hello (high bit) OpenSSL refuses properly; a letter
         * is a plain HTTP request. One peek per connection. */
        unsigned char head[8];
        ssize_t k = recv(c->fd, head, sizeof(head), MSG_PEEK);
        if (k <= 0) return k;
        if (head[0] != 0x16 && !(head[0] & 0x80)) return plain_http_on_tls(c, head, (size_t)k);
        c->tls_sniffed = 1;
    }
    int want_write;
    ssize_t n = gw_tls_read(c->ssl, buf, len, &want_write);
    if (n >= 0) return n;
    if (n == GW_TLS_AGAIN) {
        if (want_write && !c->tls_read_wants_write) {
            c->tls_read_wants_write = 1;
            event_add(&c->wev, NULL);
        }
        errno = EAGAIN;
        return -1;
    }
    gw_debug("client %s:%d: TLS %s: %s", c->peer, c->peer_port,
             SSL_is_init_finished(c->ssl) ? "error" : "handshake failed", gw_tls_last_error());
    errno = EPROTO;
    return -1;
}

static void linger_read(struct gw_conn *c)
{
    char scratch[4096];
    ssize_t n = read(c->fd, scratch, sizeof(scratch));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) conn_free(c);
}

static void read_once(struct gw_conn *c);

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    if (c->dead) return;
    if (c->lingering) {
        linger_read(c); /* raw bytes: after close_notify only the FIN matters */
        return;
    }
    if (c->tls_write_wants_read) {
        c->tls_write_wants_read = 0;
        conn_write(c);
        if (c->dead) return;
    }
    read_once(c);
    /* OpenSSL reads whole records: what it decrypted beyond what fitted
     * in our buffer is not in the socket any more, so no event would come
     * for it. SSL_pending, not SSL_has_pending: the latter also counts the
     * start of a record still arriving, and re-arming for that would spin
     * the loop until its end comes (without read-ahead OpenSSL takes no
     * more than one record from the socket, so the rest of the bytes
     * still wake us through the socket). */
    if (c->ssl && !c->dead && !c->lingering && !c->read_paused && SSL_pending(c->ssl) > 0)
        event_active(&c->rev, EV_READ, 1);
}

static void read_once(struct gw_conn *c)
{
    ssize_t n;
    if (c->in_request && !c->body_done && !c->chunked && c->in_pos == c->in_len && c->current &&
        c->body) {
        /* A Content-Length body with nothing buffered: straight into the
         * body buffer, no copy through the input buffer. */
        size_t want = c->body_left < 65536 ? (size_t)c->body_left : 65536;
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(c->body, (ev_ssize_t)want, &v, 1) < 1) {
            /* Returning with nothing read would spin: the read event is
             * level-triggered and persistent. */
            conn_close_later(c);
            return;
        }
        n = conn_recv(c, v.iov_base, want);
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(c->body, &v, 1);
            c->body_left -= (uint64_t)n;
            if (!c->body_left) c->body_done = 1;
            body_arrived(c, (size_t)n);
            return;
        }
    } else {
        if (c->in_pos == c->in_len) {
            /* Nothing pending: read into the worker's buffer. */
            if (c->in && c->in != c->worker->read_buf) free(c->in);
            c->in = c->worker->read_buf;
            c->in_cap = MAX_HEAD;
            c->in_pos = c->in_len = 0;
        }
        if (c->in_len == c->in_cap && c->in_pos > 0) {
            memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
            c->in_len -= c->in_pos;
            c->in_pos = 0;
        }
        if (c->in_len == c->in_cap) {
            if (!c->in_request && c->in_cap < MAX_HEAD) {
                char *big = realloc(c->in, MAX_HEAD); /* our own, never the worker's */
                if (!big) {
                    conn_close_later(c);
                    return;
                }
                c->in = big;
                c->in_cap = MAX_HEAD;
            } else if (!c->in_request) {
                conn_process(c); /* answers 431 */
                return;
            } else {
                /* Pipelined bytes while we answer: stop reading until then. */
                pause_reading(c);
                return;
            }
        }
        n = conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            conn_process(c);
            conn_release_input(c);
            return;
        }
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        conn_process(c); /* woken up for bytes we already had */
        conn_release_input(c);
        return;
    }
    if (n == -2) {
        conn_close_gracefully(c); /* the 400 is written: let the client read it */
        return;
    }
    /* End of file or error: the client is gone (a half-closed client that
     * still waits for its answer is treated as gone, as nginx does). */
    conn_close_later(c);
    conn_release_input(c);
}

void gw_conn_absorb_body(struct gw_conn *c)
{
    if (c->dead || c->chunked || c->body_done || !c->body) return;
    size_t avail = c->in_len - c->in_pos;
    size_t take = avail < c->body_left ? avail : (size_t)c->body_left;
    if (!take) return;
    evbuffer_add(c->body, c->in + c->in_pos, take);
    c->in_pos += take;
    c->body_left -= take;
    c->body_received += take;
    if (!c->body_left) {
        c->body_done = 1;
        conn_rearm_timer(c); /* nothing more to wait for from the client */
    }
}

void gw_conn_want_body(struct gw_conn *c, int stream)
{
    if (!c || c->dead) return;
    c->stream_body = (unsigned)stream;
    if (c->expect_100 && !c->sent_100 && !c->body_done) {
        c->sent_100 = 1;
        evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        if (!c->writing) conn_write(c);
    }
}

void gw_conn_body_consumed(struct gw_conn *c)
{
    if (!c || c->dead || !c->read_paused || c->body_done || !c->body) return;
    if (evbuffer_get_length(c->body) > BODY_LOW_WATER) return;
    resume_reading(c);
    conn_rearm_timer(c);
}

/* --- accepting ---------------------------------------------------------- */

static atomic_uint_fast64_t next_serial; /* connections of every worker */

static void conn_new(struct gw_listener *l, int fd, const struct sockaddr_storage *ss)
{
    struct gw_worker *w = l->worker;
    struct gw_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    if (l->ssl) {
        /* The context of the snapshot current now: a reload's new
         * certificate serves the next connection, this one keeps its own. */
        c->ssl = SSL_new(w->snapshot->tls);
        if (!c->ssl || !SSL_set_fd(c->ssl, fd)) {
            gw_error("TLS: cannot set up a connection (out of memory)");
            if (c->ssl) SSL_free(c->ssl);
            free(c);
            close(fd);
            return;
        }
        SSL_set_accept_state(c->ssl);
    }
    c->fd = fd;
    c->worker = w;
    c->local_port = l->port;
    c->serial = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed) + 1;
    c->out = gw_oom_check(evbuffer_new());
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof(c->peer));
        c->peer_port = ntohs(a->sin6_port);
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof(c->peer));
        c->peer_port = ntohs(a->sin_port);
    }
    /* Streamed answers go out as many small writes: Nagle would hold each
     * one back until the previous was acknowledged. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, read_cb, c);
    event_assign(&c->wev, w->base, fd, EV_WRITE | EV_PERSIST, write_cb, c);
    event_assign(&c->timer, w->base, -1, 0, timer_cb, c);
    event_assign(&c->cev, w->base, fd, EV_CLOSED, closed_cb, c);
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    atomic_fetch_add_explicit(&w->connections, 1, memory_order_relaxed);
    event_add(&c->rev, NULL);
    conn_rearm_timer(c);
}

void gw_conn_accept_cb(evutil_socket_t listen_fd, short what, void *arg)
{
    struct gw_listener *l = arg;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            switch (err) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
            case ENETDOWN:
            case ENETUNREACH:
            case EHOSTDOWN:
            case EHOSTUNREACH:
            case ENONET:
            case ENOPROTOOPT:
            case EOPNOTSUPP:
                /* That connection failed before we took it (accept(2) says
                 * to retry on these): the next one may be fine. */
                gw_debug("accept: %s", strerror(err));
                continue;
            default:
                /* EMFILE, ENFILE, ENOBUFS, ENOMEM, or worse: the pending
                 * connection stays queued, and retrying at once would spin. */
                gw_worker_pause_accept(l->worker, err);
                return;
            }
        }
        conn_new(l, fd, &ss);
    }
}

/* --- drain and stop ----------------------------------------------------- */

/* Bytes of a request head not yet complete: the client is mid-request,
 * and closing now would lose a request it cannot safely send again. */
static int head_begun(const struct gw_conn *c)
{
    if (c->in_request || c->lingering) return 0;
    /* Empty lines before a request line are not a request (RFC 9112 2.2:
     * old clients send a CRLF after a POST body). */
    for (size_t i = c->in_pos; i < c->in_len; i++)
        if (c->in[i] != '\r' && c->in[i] != '\n') return 1;
    return 0;
}

void gw_conn_close_idle(struct gw_worker *w)
{
    for (struct gw_conn *c = w->conns; c; c = c->next)
        if (!c->in_request && !c->writing && !evbuffer_get_length(c->out) && !head_begun(c))
            conn_close_later(c);
}

size_t gw_conn_heads_begun(const struct gw_worker *w)
{
    size_t n = 0;
    for (const struct gw_conn *c = w->conns; c; c = c->next)
        if (!c->dead && head_begun(c)) n++;
    return n;
}

void gw_conn_close_all(struct gw_worker *w)
{
    while (w->conns) {
        struct gw_conn *c = w->conns;
        if (c->current && !c->dead) {
            struct proxy_request *rq = c->current;
            c->current = NULL;
            gw_proxy_on_client_gone(rq);
        }
        conn_free(c);
    }
}

size_t gw_conn_unflushed(const struct gw_worker *w)
{
    size_t n = 0;
    for (const struct gw_conn *c = w->conns; c; c = c->next)
        if (!c->dead && !c->lingering) n += evbuffer_get_length(c->out);
    return n;
}
