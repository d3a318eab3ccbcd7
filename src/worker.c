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
#include <event2/event.h>

#include "gw_arena.h"
#include "gw_log.h"
#include "gw_plugin.h"
#include "gw_request.h"
#include "client_conn.h"
#include "proxy.h"
#include "worker.h"

extern _Thread_local int gw_log_worker;

/* SO_REUSEPORT lets any process of the same user bind the port too, and the
 * kernel would then split connections between the two, silently: a second
 * sluice started by hand beside the systemd one would serve a share of the
 * traffic with its own config. A socket without SO_REUSEPORT cannot join
 * that group, so binding one first tells whether someone already listens.
 * (SO_REUSEADDR only keeps TIME_WAIT leftovers from counting.) */
static int address_taken(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0; /* the real socket will say what is wrong */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int taken = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

/* Own socket per worker with SO_REUSEPORT: the kernel balances accepted
 * connections between workers with no shared accept lock. The first
 * worker's (first) checks that the address is not another process's. */
static int listen_socket(const struct gw_listen *l, int first)
{
    char where[GW_LISTEN_TEXT_MAX];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(l->host, l->port, &hints, &res);
    if (rc != 0) {
        gw_error("cannot resolve listen address %s:%s: %s", l->host, l->port, gai_strerror(rc));
        return -1;
    }
    if (first && address_taken(res)) {
        gw_error("cannot listen on %s: %s (another process listens there)",
                 gw_listen_text(l, where), strerror(EADDRINUSE));
        freeaddrinfo(res);
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
    if (l->deferred) {
        /* Kong's `deferred`: no accept (nor a connection struct) until
         * the client sends its first bytes. */
        int secs = 60;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, l->backlog) < 0) {
        gw_error("cannot listen on %s: %s", gw_listen_text(l, where), strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* --- messages from the main thread ------------------------------------- */

static void drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    long busy = atomic_load_explicit(&w->in_flight, memory_order_relaxed);
    int idle = busy == 0 && !gw_conn_unflushed(w) && !gw_conn_heads_begun(w);
    if (idle || gw_now_us() >= w->drain_deadline_us) {
        if (busy) gw_warn("drain timeout: dropping %ld requests in flight", busy);
        event_base_loopbreak(w->base);
    }
}

static void start_drain(struct gw_worker *w)
{
    if (w->draining) return;
    w->draining = 1;
    for (size_t i = 0; i < w->n_listeners; i++) {
        event_del(&w->listeners[i].ev);
        close(w->listeners[i].fd);
    }
    w->n_listeners = 0;
    event_del(&w->accept_resume);
    gw_conn_close_idle(w);
    w->drain_deadline_us = gw_now_us() + (uint64_t)w->settings->drain_timeout * 1000000u;
    w->drain_timer = gw_oom_check(event_new(w->base, -1, EV_PERSIST, drain_check_cb, w));
    struct timeval tv = {0, 100 * 1000};
    event_add(w->drain_timer, &tv);
    drain_check_cb(-1, 0, w);
}

/* --- accepting when descriptors run out --------------------------------- */

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    w->accept_paused = 0;
    for (size_t i = 0; i < w->n_listeners; i++) /* none once draining */
        event_add(&w->listeners[i].ev, NULL);
}

void gw_worker_pause_accept(struct gw_worker *w, int err)
{
    if (w->accept_paused) return;
    w->accept_paused = 1;
    for (size_t i = 0; i < w->n_listeners; i++)
        event_del(&w->listeners[i].ev);
    struct timeval tv = {0, GW_ACCEPT_PAUSE_MS * 1000};
    event_add(&w->accept_resume, &tv);
    uint64_t now = gw_now_us();
    if (now - w->accept_logged_us >= 1000000u) {
        gw_warn("accept: %s: not accepting for %d ms (%ld connections open on this worker, "
                "%u earlier pauses not logged)",
                strerror(err), GW_ACCEPT_PAUSE_MS,
                atomic_load_explicit(&w->connections, memory_order_relaxed), w->accept_unlogged);
        w->accept_logged_us = now;
        w->accept_unlogged = 0;
    } else {
        w->accept_unlogged++;
    }
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
    /* No EPOLL_USE_CHANGELIST: it folded evhttp's per-request event
     * toggling, which is gone, and it is unsafe when an fd is closed and its
     * number reused within one loop pass (curl retrying a refused connect,
     * then accept() getting the number): the folded change became an
     * EPOLL_CTL_MOD on a dead fd, libevent dropped it, and the new client
     * connection was never read (a hang, seen under load in errors.test). */
    w->base = event_base_new();
    if (!w->base) return -1;
    w->read_buf = malloc(GW_CONN_READ_BUF);
    if (!w->read_buf) goto fail;
    evtimer_assign(&w->accept_resume, w->base, accept_resume_cb, w);
    struct timeval client_tv = {settings->client_timeout, 0};
    w->client_timeout = event_base_init_common_timeout(w->base, &client_tv);
    for (size_t i = 0; i < settings->n_proxy; i++) {
        struct gw_listener *l = &w->listeners[i];
        l->fd = listen_socket(&settings->proxy[i], id == 0);
        if (l->fd < 0) goto fail;
        l->worker = w;
        l->port = atoi(settings->proxy[i].port);
        l->ssl = settings->proxy[i].ssl;
        event_assign(&l->ev, w->base, l->fd, EV_READ | EV_PERSIST, gw_conn_accept_cb, l);
        event_add(&l->ev, NULL);
        w->n_listeners++;
    }
    if (gw_upstream_init(w) < 0) goto fail;
    w->notify = gw_oom_check(event_new(w->base, -1, 0, notify_cb, w));
    gw_snapshot_ref(snap);
    w->snapshot = snap;
    return 0;

fail:
    /* Nothing of a worker that failed to set up stays open or allocated. */
    for (size_t i = 0; i < w->n_listeners; i++) {
        event_del(&w->listeners[i].ev);
        close(w->listeners[i].fd);
    }
    w->n_listeners = 0;
    gw_upstream_cleanup(w);
    free(w->read_buf);
    w->read_buf = NULL;
    event_base_free(w->base);
    w->base = NULL;
    return -1;
}

static void run_worker_exit_hooks(void)
{
    for (size_t i = 0; gw_plugins[i]; i++)
        if (gw_plugins[i]->worker_exit) gw_plugins[i]->worker_exit();
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
        for (struct gw_conn *c = w->conns; c; c = c->next)
            n++;
        struct proxy_request **left = calloc(n + 1, sizeof(*left));
        n = 0;
        for (struct gw_conn *c = w->conns; left && c; c = c->next)
            if (c->current) left[n++] = c->current;
        for (size_t i = 0; i < n; i++)
            gw_proxy_shutdown_request(left[i]);
        free(left);
        /* Plugins give back the requests they hold suspended (answered
         * 503 by gw_request_resume) and free their per-worker state. */
        run_worker_exit_hooks();
        struct timeval flush = {0, 300 * 1000};
        event_base_loopexit(w->base, &flush);
        event_base_dispatch(w->base);
    } else {
        run_worker_exit_hooks();
    }
    gw_conn_close_all(w);
    free(w->read_buf);
    for (size_t i = 0; i < w->n_listeners; i++) {
        event_del(&w->listeners[i].ev);
        close(w->listeners[i].fd);
    }
    event_del(&w->accept_resume);
    gw_upstream_cleanup(w);
    if (w->drain_timer) event_free(w->drain_timer);
    event_free(w->notify);
    struct gw_snapshot *pending = atomic_exchange(&w->pending_snapshot, NULL);
    gw_snapshot_unref(pending);
    gw_snapshot_unref(w->snapshot);
    w->snapshot = NULL;
    event_base_free(w->base);
    gw_arena_release_cache();
    atomic_store(&w->exited, 1);
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
