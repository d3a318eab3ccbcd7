#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "gw_arena.h"
#include "gw_log.h"
#include "gw_request.h"
#include "proxy.h"
#include "worker.h"

extern _Thread_local int gw_log_worker;

/* Own socket per worker with SO_REUSEPORT: the kernel balances accepted
 * connections between workers with no shared accept lock. */
static int listen_socket(const struct gw_listen *l)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(l->host, l->port, &hints, &res);
    if (rc != 0) {
        gw_error("cannot resolve listen address %s:%s: %s", l->host, l->port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        gw_error("socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        gw_error("cannot listen on %s:%s: %s", l->host, l->port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* --- connections: open addressing keyed by the evhttp_connection ------ */

static size_t conn_slot(const struct gw_worker *w, const void *evcon)
{
    uintptr_t x = (uintptr_t)evcon;
    x ^= x >> 17;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 20) & (w->cap_conns - 1);
}

static void conn_insert(struct gw_worker *w, struct gw_conn *c)
{
    if ((w->n_conns + 1) * 2 > w->cap_conns) {
        size_t old_cap = w->cap_conns;
        struct gw_conn **old = w->conns;
        w->cap_conns = old_cap ? old_cap * 2 : 256;
        w->conns = calloc(w->cap_conns, sizeof(*w->conns));
        w->n_conns = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i]) conn_insert(w, old[i]);
        free(old);
    }
    size_t i = conn_slot(w, c->evcon);
    while (w->conns[i])
        i = (i + 1) & (w->cap_conns - 1);
    w->conns[i] = c;
    w->n_conns++;
}

/* Linear probing deletion by backward shift: no tombstones to accumulate. */
static void conn_remove(struct gw_worker *w, struct gw_conn *c)
{
    size_t mask = w->cap_conns - 1, i = conn_slot(w, c->evcon);
    while (w->conns[i] != c)
        i = (i + 1) & mask;
    w->conns[i] = NULL;
    w->n_conns--;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!w->conns[j]) break;
        size_t k = conn_slot(w, w->conns[j]->evcon);
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            w->conns[i] = w->conns[j];
            w->conns[j] = NULL;
            i = j;
        }
    }
}

static void conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
    struct gw_conn *c = arg;
    struct gw_worker *w = c->worker;
    struct proxy_request *rq = c->current;
    if (rq) {
        /* Handled from the loop, never from inside whatever callback we are
         * in (possibly a curl one). */
        rq->client_gone = 1;
        rq->conn = NULL;
        gw_proxy_unwatch_client(rq); /* libevent closes the socket next */
        event_active(rq->timer, EV_TIMEOUT, 1);
    }
    conn_remove(w, c);
    atomic_fetch_sub_explicit(&w->connections, 1, memory_order_relaxed);
    free(c);
}

struct gw_conn *gw_worker_conn(struct gw_worker *w, struct evhttp_connection *evcon)
{
    if (!evcon) return NULL;
    if (w->cap_conns) {
        size_t i = conn_slot(w, evcon);
        while (w->conns[i]) {
            if (w->conns[i]->evcon == evcon) return w->conns[i];
            i = (i + 1) & (w->cap_conns - 1);
        }
    }
    struct gw_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->evcon = evcon;
    c->worker = w;
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evcon, &addr, &port);
    snprintf(c->peer, sizeof(c->peer), "%s", addr ? addr : "");
    c->peer_port = port;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
    /* Streamed replies go out as many small writes: Nagle would hold each
     * one back until the previous was acknowledged. */
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        c->local_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                       : ((struct sockaddr_in *)&ss)->sin_port);
    conn_insert(w, c);
    evhttp_connection_set_closecb(evcon, conn_close_cb, c);
    atomic_fetch_add_explicit(&w->connections, 1, memory_order_relaxed);
    return c;
}

/* --- messages from the main thread ------------------------------------- */

/* Answers still in an output buffer: evhttp_free() would cut them off. */
static int unflushed_output(const struct gw_worker *w)
{
    for (size_t i = 0; i < w->cap_conns; i++) {
        const struct gw_conn *c = w->conns[i];
        if (!c) continue;
        struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
        if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0) return 1;
    }
    return 0;
}

static void drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    long busy = atomic_load_explicit(&w->in_flight, memory_order_relaxed);
    if ((busy == 0 && !unflushed_output(w)) || gw_now_us() >= w->drain_deadline_us) {
        if (busy) gw_warn("drain timeout: dropping %ld requests in flight", busy);
        event_base_loopbreak(w->base);
    }
}

static void start_drain(struct gw_worker *w)
{
    if (w->draining) return;
    w->draining = 1;
    for (size_t i = 0; i < w->n_bound; i++)
        evhttp_del_accept_socket(w->http, w->bound[i]);
    w->n_bound = 0;
    w->drain_deadline_us = gw_now_us() + (uint64_t)w->settings->drain_timeout * 1000000u;
    w->drain_timer = event_new(w->base, -1, EV_PERSIST, drain_check_cb, w);
    struct timeval tv = {0, 100 * 1000};
    event_add(w->drain_timer, &tv);
    drain_check_cb(-1, 0, w);
}

void gw_worker_request_done(struct gw_worker *w)
{
    if (w->draining && atomic_load_explicit(&w->in_flight, memory_order_relaxed) == 0)
        event_active(w->drain_timer, EV_TIMEOUT, 1);
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    struct gw_snapshot *snap = atomic_exchange(&w->pending_snapshot, NULL);
    if (snap) {
        struct gw_snapshot *old = w->snapshot;
        w->snapshot = snap;
        gw_snapshot_unref(old);
    }
    if (atomic_load(&w->drain_requested)) start_drain(w);
}

void gw_worker_post_snapshot(struct gw_worker *w, struct gw_snapshot *snap)
{
    gw_snapshot_ref(snap);
    struct gw_snapshot *prev = atomic_exchange(&w->pending_snapshot, snap);
    if (prev) gw_snapshot_unref(prev); /* two reloads before the worker looked */
    event_active(w->notify, EV_READ, 1);
}

void gw_worker_post_drain(struct gw_worker *w)
{
    atomic_store(&w->drain_requested, 1);
    event_active(w->notify, EV_READ, 1);
}

/* --- lifecycle ---------------------------------------------------------- */

int gw_worker_init(struct gw_worker *w, unsigned id, const struct gw_settings *settings,
                   struct gw_snapshot *snap)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->settings = settings;
    /* With the changelist, libevent folds the add/remove churn of one loop
     * iteration (evhttp toggling read/write, curl switching a socket from
     * send to receive) into one epoll_ctl per socket, or none: strace -c
     * showed epoll_ctl at 40% of the syscall time per proxied request. */
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!w->base) return -1;
    w->http = evhttp_new(w->base);
    evhttp_set_allowed_methods(
        w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                     EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(w->http, NULL);
    evhttp_set_max_body_size(w->http, settings->max_body_size);
    evhttp_set_max_headers_size(w->http, 64 * 1024);
    evhttp_set_timeout(w->http, settings->client_timeout);
    evhttp_set_gencb(w->http, gw_proxy_request_cb, w);
    for (size_t i = 0; i < settings->n_proxy; i++) {
        int fd = listen_socket(&settings->proxy[i]);
        if (fd < 0) return -1;
        w->bound[i] = evhttp_accept_socket_with_handle(w->http, fd);
        if (!w->bound[i]) return -1;
        w->n_bound++;
    }
    if (gw_upstream_init(w) < 0) return -1;
    w->notify = event_new(w->base, -1, 0, notify_cb, w);
    gw_snapshot_ref(snap);
    w->snapshot = snap;
    return 0;
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;
    gw_log_worker = (int)w->id;
    event_base_dispatch(w->base);
    if (atomic_load_explicit(&w->in_flight, memory_order_relaxed) > 0) {
        /* The drain timeout passed: end what is left, properly (log lines,
         * upstream transfers removed, memory freed), then give the answers
         * a moment to leave before the connections go. */
        size_t n = 0;
        struct proxy_request **left = calloc(w->n_conns + 1, sizeof(*left));
        for (size_t i = 0; left && i < w->cap_conns; i++)
            if (w->conns[i] && w->conns[i]->current) left[n++] = w->conns[i]->current;
        for (size_t i = 0; i < n; i++)
            gw_proxy_shutdown_request(left[i]);
        free(left);
        struct timeval flush = {0, 300 * 1000};
        event_base_loopexit(w->base, &flush);
        event_base_dispatch(w->base);
    }
    evhttp_free(w->http);
    gw_upstream_cleanup(w);
    if (w->drain_timer) event_free(w->drain_timer);
    event_free(w->notify);
    struct gw_snapshot *pending = atomic_exchange(&w->pending_snapshot, NULL);
    gw_snapshot_unref(pending);
    gw_snapshot_unref(w->snapshot);
    w->snapshot = NULL;
    event_base_free(w->base);
    free(w->conns);
    gw_arena_release_cache();
    return NULL;
}

int gw_worker_start(struct gw_worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void gw_worker_join(struct gw_worker *w)
{
    pthread_join(w->thread, NULL);
}
