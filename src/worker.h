/*
 * A worker is one thread with its own event base, its own listening sockets
 * (SO_REUSEPORT: the kernel spreads connections), its own libcurl multi
 * handle and connection cache. Workers share nothing but the read-only
 * config snapshot and the atomic counters below.
 */
#ifndef GW_WORKER_H
#define GW_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <curl/curl.h>

#include "settings.h"
#include "snapshot.h"

#include <event2/event_struct.h>

struct event_base;
struct gw_conn;
struct proxy_request;

/* One listening socket of one worker. */
struct gw_listener {
    struct gw_worker *worker;
    int fd;
    int port;
    int ssl; /* speaks TLS, with the snapshot's context */
    struct event ev;
};

struct gw_worker {
    unsigned id;
    pthread_t thread;
    const struct gw_settings *settings;
    struct event_base *base;
    struct gw_listener listeners[GW_MAX_LISTEN];
    size_t n_listeners;
    const struct timeval *client_timeout; /* a libevent common timeout: O(1) re-arming */

    CURLM *multi;
    struct event *curl_timer;
    void *sock_watch; /* upstream socket events, by fd (upstream.c) */
    size_t n_sock_watch;
    CURL **easy_pool; /* reset handles kept for reuse */
    size_t n_easy_pool, cap_easy_pool;
    void *url_cache; /* parsed upstream URLs that plugins set (upstream.c) */
    /* Idle upstream connections (upstream.c, "idle connections"). */
    unsigned n_parked;
    struct event *pool_sweep;
    CURL *janitor;
    int janitor_running;

    /* Messages from the main thread: a new snapshot, or drain. */
    struct event *notify;
    _Atomic(struct gw_snapshot *) pending_snapshot;
    atomic_int drain_requested;
    atomic_int exited;            /* set by the worker thread as it ends: join will not wait */
    struct gw_snapshot *snapshot; /* the worker's reference */
    int draining;
    uint64_t drain_deadline_us;
    struct event *drain_timer;

    /* Out of descriptors (EMFILE...): the listeners rest for a moment,
     * since a level-triggered listener with a connection it cannot take
     * would wake the loop again at once, forever. */
    struct event accept_resume;
    int accept_paused;
    uint64_t accept_logged_us; /* last "not accepting" line: one a second */
    unsigned accept_unlogged;  /* pauses since that line */

    struct gw_conn *conns; /* client connections (client_conn.c) */
    char *read_buf;        /* every client read lands here first (client_conn.c) */

    /* Read by GET /status from the main thread. */
    atomic_ulong requests_total;
    atomic_long in_flight;
    atomic_long connections;
};

/* Binds the listeners (errors to stderr) without starting the thread. */
int gw_worker_init(struct gw_worker *w, unsigned id, const struct gw_settings *settings,
                   struct gw_snapshot *snap);
int gw_worker_start(struct gw_worker *w);
/* From the main thread. gw_worker_post_snapshot takes a reference for the worker. */
void gw_worker_post_snapshot(struct gw_worker *w, struct gw_snapshot *snap);
void gw_worker_post_drain(struct gw_worker *w);
void gw_worker_join(struct gw_worker *w);

/* Called by client_conn.c when accept() fails for want of a resource
 * (err: EMFILE, ENFILE, ENOBUFS, ENOMEM): stops accepting on this worker for
 * GW_ACCEPT_PAUSE_MS; connections meanwhile wait in the kernel's backlog. */
#define GW_ACCEPT_PAUSE_MS 100
void gw_worker_pause_accept(struct gw_worker *w, int err);

/* Called by proxy.c when a request ends: a draining worker may now stop. */
void gw_worker_request_done(struct gw_worker *w);

/* upstream.c: libcurl multi on the worker's event base. */
int gw_upstream_init(struct gw_worker *w);
void gw_upstream_cleanup(struct gw_worker *w);
/* Easy handles are kept and reused with the options every transfer shares
 * still set: *fresh says the handle is new and needs them. put clears
 * what one transfer sets for itself (method, body, header list, callbacks'
 * data) instead of curl_easy_reset, which callgrind put at ~3k
 * instructions a request, plus ~1k to set the shared options again. */
CURL *gw_upstream_easy_get(struct gw_worker *w, int *fresh);
/* tls_blobs: the transfer set a service's CA or client certificate. */
void gw_upstream_easy_put(struct gw_worker *w, CURL *easy, int tls_blobs);
/* Start a transfer that was set up on easy (CURLOPT_PRIVATE = the request). */
int gw_upstream_add(struct gw_worker *w, CURL *easy);
/* Remove a transfer; never from inside a curl callback. */
void gw_upstream_remove(struct gw_worker *w, CURL *easy);
/* The URL parsed once into a CURLU owned by the worker (freed when it
 * stops), for CURLOPT_CURLU; NULL when the cache is full or curl refuses
 * the URL (then pass the string). For URLs that repeat: plugins' (ai-proxy
 * sends each route's requests to one provider URL). */
void *gw_upstream_parsed_url(struct gw_worker *w, const char *url);
/* CURLOPT_CLOSESOCKETFUNCTION for every transfer (clientp = the worker). */
curl_socket_t gw_upstream_open_socket_cb(void *clientp, curlsocktype purpose,
                                         struct curl_sockaddr *a);
int gw_upstream_close_socket_cb(void *clientp, curl_socket_t s);
/* CURLOPT_MAXAGE_CONN for --upstream-keepalive-idle-timeout. */
long gw_upstream_maxage(const struct gw_worker *w);

/* proxy.c */
/* A transfer finished (called by upstream.c outside curl callbacks). */
void gw_proxy_upstream_done(struct proxy_request *rq, CURLcode result);
/* The request's transfer is in the multi handle (running or paused). */
int gw_proxy_transfer_live(const struct proxy_request *rq);
/* The transfer's socket is readable (upstream.c, before curl reads it). */
void gw_proxy_upstream_readable(struct proxy_request *rq);

#endif
