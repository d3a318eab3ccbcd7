/*
 * Client connections: HTTP/1.1 server side, on the worker's event loop.
 *
 * Why our own and not evhttp: evhttp reads a whole request body before the
 * application sees the request (so bodies could not stream to the
 * upstream), answers bad requests with its own HTML pages, and toggles
 * its events on every request (two epoll_ctl each). This layer reads with
 * one persistent read event per connection (which also tells us at once
 * when a client leaves), writes straight from the caller (no wait for
 * EPOLLOUT unless the socket is full), and hands the proxy each request
 * as soon as its head is parsed.
 *
 * Division of labour: this file owns sockets, parsing, body framing in
 * both directions, keep-alive, pipelining and client timeouts; proxy.c
 * owns everything about what a request means (gw_proxy_on_* below).
 */
#ifndef GW_CLIENT_CONN_H
#define GW_CLIENT_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "http1.h"

struct evbuffer;
struct gw_headers;
struct gw_worker;
struct proxy_request;

/* The worker's read buffer, and the largest request head accepted. */
#define GW_CONN_READ_BUF (64 * 1024)

struct gw_conn {
    int fd;
    struct gw_worker *worker;
    struct gw_conn *prev, *next; /* the worker's list, for drain */
    struct event rev, wev, timer;
    struct event cev; /* EV_CLOSED, only while reading is paused */

    char peer[64];
    int peer_port;
    int local_port;
    uint64_t serial;   /* unique in the process, in accept order (nginx's $connection) */
    unsigned requests; /* requests read on this connection so far */

    /* Bytes read and not yet used: a head being read, body bytes, or the
     * next pipelined request. [in_pos, in_len) is what is left. */
    char *in;
    size_t in_pos, in_len, in_cap;

    /* The request being read or answered. */
    struct proxy_request *current; /* NULL once the answer was handed over */
    int minor;                     /* HTTP/1.<minor> */
    int64_t body_length;           /* Content-Length, -1 chunked, 0 none */
    uint64_t body_received;        /* decoded body bytes so far */
    uint64_t body_left;            /* with Content-Length */
    struct evbuffer *body;         /* the current request's (it owns it): decoded bytes go there */

    unsigned in_request : 1; /* a head was parsed and its exchange is not over */
    unsigned chunked : 1;    /* request body is chunked */
    unsigned body_done : 1;  /* the request body has been read to its end */
    unsigned expect_100 : 1; /* client waits for 100 Continue before the body */
    unsigned sent_100 : 1;
    unsigned keep_alive : 1;           /* the connection outlives this exchange */
    unsigned read_paused : 1;          /* reading stopped: body or pipeline buffer full */
    unsigned writing : 1;              /* waiting for the socket to take more output */
    unsigned reply_mode : 2;           /* how the answer's body is framed (client_conn.c) */
    unsigned reply_done : 1;           /* the whole answer is in `out` */
    unsigned dead : 1;                 /* closing: ignore everything, free from the loop */
    unsigned body_error : 1;           /* malformed chunked body: the exchange ends badly */
    unsigned stream_body : 1;          /* the proxy streams the body: bound what we buffer */
    unsigned lingering : 1;            /* half-closed, dropping input until the client closes */
    unsigned linger : 1;               /* close with a lingering close (after an error) */
    unsigned tls_read_wants_write : 1; /* a TLS read waits for the socket to take output */
    unsigned tls_write_wants_read : 1; /* a TLS write waits for input */
    unsigned tls_sniffed : 1;          /* the first byte said TLS (not plain HTTP) */
    struct gw_h1_chunked chunk;        /* decoder state of a chunked request body */
    struct evbuffer *out;              /* the answer, not yet written */
    struct ssl_st *ssl;                /* on a TLS listener (tls.h); NULL on plain ones */
};

/* worker.c: a listening socket's read event. */
void gw_conn_accept_cb(int listen_fd, short what, void *listener);
/* Drain: close connections with no request in progress, nothing to send
 * and no request head begun (those are answered, then closed). */
void gw_conn_close_idle(struct gw_worker *w);
/* Connections whose next request head has begun to arrive. */
size_t gw_conn_heads_begun(const struct gw_worker *w);
/* Stop: close every connection (their requests were ended before). */
void gw_conn_close_all(struct gw_worker *w);
/* Bytes waiting to be written, over all connections. */
size_t gw_conn_unflushed(const struct gw_worker *w);

/* proxy.c, about the current request. */

/* The proxy wants the body, whole (stream = 0: reading is bounded by the
 * body size limit) or as it comes (stream = 1: reading pauses while the
 * upstream has not taken what is buffered). Answers a waiting
 * `Expect: 100-continue`. */
void gw_conn_want_body(struct gw_conn *c, int stream);
/* Moves the Content-Length body bytes that came with the head (already in
 * the input buffer) into c->body now, without telling the proxy: it then
 * sees at once whether the body is complete (most small POSTs are). */
void gw_conn_absorb_body(struct gw_conn *c);
/* The proxy took body bytes out of c->body: reading may resume. */
void gw_conn_body_consumed(struct gw_conn *c);
/*
 * Starts the answer. Framing follows the headers: with Content-Length that
 * many bytes follow; without, chunked (HTTP/1.1) or until the close (1.0).
 * no_body: HEAD, 1xx, 204, 304 (headers are sent as they are). A
 * Connection header in `headers` is merged with ours (close/keep-alive).
 */
void gw_conn_reply_head(struct gw_conn *c, int status, const struct gw_headers *headers,
                        int no_body);
/* Appends body bytes (drains `data`) and writes what the socket takes. */
void gw_conn_reply_body(struct gw_conn *c, struct evbuffer *data);
/* The answer is complete. The request is detached from the connection. */
void gw_conn_reply_end(struct gw_conn *c);
/* A whole answer at once: Content-Length from `body` (may be NULL). */
void gw_conn_reply(struct gw_conn *c, int status, const struct gw_headers *headers,
                   struct evbuffer *body, int no_body);
/* The answer cannot be completed (a broken upstream stream): send what is
 * queued, then close without ending the body, so the client sees the cut.
 * The request is detached. */
void gw_conn_reply_abort(struct gw_conn *c);
/* Bytes queued for this client and not yet written. */
size_t gw_conn_pending(const struct gw_conn *c);

/* Implemented by proxy.c: what the connection tells the proxy. None of
 * them is called from inside a call the proxy made, except
 * gw_proxy_on_client_gone (a write that fails), which only sets flags. */
/* A request head: the proxy creates its request and sets c->current. */
void gw_proxy_on_request(struct gw_conn *c, const struct gw_h1_head *head);
/* More body bytes in c->body, or the body is complete (c->body_done). */
void gw_proxy_on_body(struct proxy_request *rq);
/* Everything queued has been written (after a wait for the socket). */
void gw_proxy_on_drained(struct proxy_request *rq);
/* The client went away, or timed out: the connection is going. */
void gw_proxy_on_client_gone(struct proxy_request *rq);

#endif
