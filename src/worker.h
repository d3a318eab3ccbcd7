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

struct event;
struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_connection;
struct evhttp_request;
struct proxy_request;

/* Per client connection, created at its first request: lets a close be
 * traced to the request it interrupts. */
struct gw_conn {
    struct evhttp_connection *evcon;
    struct proxy_request *current;
    struct gw_worker *worker;
    char peer[64];
    int peer_port;
    int local_port;
};

struct gw_worker {
    unsigned id;
    pthread_t thread;
    const struct gw_settings *settings;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound[GW_MAX_LISTEN];
    size_t n_bound;

    CURLM *multi;
    struct event *curl_timer;
    void *sock_watch; /* upstream socket events, by fd (upstream.c) */
    size_t n_sock_watch;
    CURL **easy_pool; /* reset handles kept for reuse */
    size_t n_easy_pool, cap_easy_pool;

    /* Messages from the main thread: a new snapshot, or drain. */
    struct event *notify;
    _Atomic(struct gw_snapshot *) pending_snapshot;
    atomic_int drain_requested;
    struct gw_snapshot *snapshot; /* the worker's reference */
    int draining;
    uint64_t drain_deadline_us;
    struct event *drain_timer;

    /* Client connections, open addressing on the evhttp_connection pointer. */
    struct gw_conn **conns;
    size_t n_conns, cap_conns;

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

/* Connection bookkeeping (worker.c), used by proxy.c. */
struct gw_conn *gw_worker_conn(struct gw_worker *w, struct evhttp_connection *evcon);

/* Called by proxy.c when a request ends: a draining worker may now stop. */
void gw_worker_request_done(struct gw_worker *w);

/* upstream.c: libcurl multi on the worker's event base. */
int gw_upstream_init(struct gw_worker *w);
void gw_upstream_cleanup(struct gw_worker *w);
CURL *gw_upstream_easy_get(struct gw_worker *w);
void gw_upstream_easy_put(struct gw_worker *w, CURL *easy);
/* Start a transfer that was set up on easy (CURLOPT_PRIVATE = the request). */
int gw_upstream_add(struct gw_worker *w, CURL *easy);
/* Remove a transfer; never from inside a curl callback. */
void gw_upstream_remove(struct gw_worker *w, CURL *easy);
/* CURLOPT_CLOSESOCKETFUNCTION for every transfer (clientp = the worker). */
int gw_upstream_close_socket_cb(void *clientp, curl_socket_t s);

/* proxy.c */
void gw_proxy_request_cb(struct evhttp_request *req, void *arg);
/* A transfer finished (called by upstream.c outside curl callbacks). */
void gw_proxy_upstream_done(struct proxy_request *rq, CURLcode result);

#endif
