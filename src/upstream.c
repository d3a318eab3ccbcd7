/*
 * libcurl multi driven by the worker's libevent loop (the "multi_socket"
 * API, as in curl's hiperfifo example): curl tells us which sockets to watch
 * and when to wake it; libevent tells curl which socket is ready. Nothing
 * blocks, and every transfer of a worker shares one connection cache, so
 * upstream keep-alive connections are reused across requests.
 *
 * Rule from curl's docs: never remove a handle from inside a curl callback.
 * Finished transfers are reported from check_done(), which runs after
 * curl_multi_socket_action() has returned.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "gw_arena.h"
#include "gw_log.h"
#include "gw_num_text.h"
#include "worker.h"

/* Idle upstream connections kept for reuse, per worker (curl closes the
 * oldest past it): Kong's upstream_keepalive_pool_size is 512 per upstream
 * and worker; 256 in all covers a worker's share of many upstreams without
 * keeping thousands of descriptors. */
#define UPSTREAM_POOL_MAX 256
/* Reset easy handles kept for reuse, per worker: about the most transfers
 * a worker has had at once; past it, finished handles are freed. */
#define EASY_POOL_MAX 1024

/* The sweep of idle connections ("idle connections" below). */
#define SWEEP_SOON_MS 1100 /* curl prunes its cache once a second at most */
static void janitor_done(struct gw_worker *w);
static void sweep_in(struct gw_worker *w, long ms);
static long sweep_interval_ms(const struct gw_worker *w);

static void check_done(struct gw_worker *w)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        if (easy == w->janitor) {
            janitor_done(w);
            continue;
        }
        struct proxy_request *rq = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&rq);
        gw_proxy_upstream_done(rq, result);
    }
}

/*
 * Upstream sockets. An idle keep-alive connection stays registered for
 * reading ("parked") between transfers instead of being removed and added
 * again: strace showed that pair as two of the ~3 epoll_ctl per request.
 * A parked socket that becomes readable is unregistered. When it is an
 * idle connection in curl's cache (the upstream closed it, or sent
 * something unasked) it is also shut down both ways: libcurl 7.88 takes an
 * idle socket with pending data for alive, and would hand those unasked
 * bytes to the next request as its answer (a response desync); shut down,
 * its liveness poll sees POLLHUP and curl discards the connection. curl
 * also stops watching the socket of a transfer it paused (a slow client):
 * that one is left alone. Events are indexed by fd and freed when
 * curl closes the socket (CURLOPT_CLOSESOCKETFUNCTION), before the fd
 * number can be reused.
 */
struct sock_watch {
    struct event *ev;
    short kind; /* registered interest, 0 if not pending */
    int parked;
    /* Opened through CURLOPT_OPENSOCKETFUNCTION: a connection's socket,
     * closed through our close callback, so its event may be parked.
     * Other sockets curl watches (its threaded resolver's socketpair) are
     * closed behind our back: their event must go when curl stops watching,
     * or it would stay registered for an fd number the next accept() gets,
     * and libevent would never add that connection to epoll. */
    int ours;
    CURL *easy; /* the last transfer that used it */
};

static struct sock_watch *sock_watch(struct gw_worker *w, curl_socket_t s)
{
    if (s < 0) return NULL;
    if ((size_t)s >= w->n_sock_watch) {
        size_t n = w->n_sock_watch ? w->n_sock_watch : 256;
        while (n <= (size_t)s)
            n *= 2;
        struct sock_watch *v = realloc(w->sock_watch, n * sizeof(*v));
        if (!v) return NULL;
        memset(v + w->n_sock_watch, 0, (n - w->n_sock_watch) * sizeof(*v));
        w->sock_watch = v;
        w->n_sock_watch = n;
    }
    return &((struct sock_watch *)w->sock_watch)[s];
}

/* Is this the connection of a transfer still under way, paused? The easy
 * handle that last gave the socket up: back in the pool it has no
 * CURLOPT_PRIVATE (an idle connection); in a request that paused its
 * transfer, it is that request's. (Handed to another request meanwhile,
 * the socket is left alone: the old behaviour, never worse.) */
static int paused_transfer_socket(CURL *easy)
{
    if (!easy) return 0;
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    return priv && gw_proxy_transfer_live((struct proxy_request *)priv);
}

static void socket_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    struct sock_watch *sw = sock_watch(w, fd);
    if (sw && sw->parked) {
        event_del(sw->ev);
        sw->kind = 0;
        if (!paused_transfer_socket(sw->easy)) {
            shutdown(fd, SHUT_RDWR);
            /* Have curl close it soon: nothing else will on an idle worker. */
            sweep_in(w, SWEEP_SOON_MS);
        }
        return;
    }
    if ((what & EV_READ) && sw && sw->easy) {
        /* Bytes came: that is progress for read_timeout, though curl calls
         * back only per whole header line or decoded body chunk. */
        char *priv = NULL;
        curl_easy_getinfo(sw->easy, CURLINFO_PRIVATE, &priv);
        if (priv) gw_proxy_upstream_readable((struct proxy_request *)priv);
    }
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(w->multi, fd, action, &running);
    check_done(w);
}

static void watch(struct gw_worker *w, struct sock_watch *sw, curl_socket_t s, short kind)
{
    if (sw->kind == kind) return;
    if (!sw->ev) {
        sw->ev = gw_oom_check(event_new(w->base, s, kind, socket_event_cb, w));
    } else {
        if (sw->kind) event_del(sw->ev);
        event_assign(sw->ev, w->base, s, kind, socket_event_cb, w);
    }
    event_add(sw->ev, NULL);
    sw->kind = kind;
}

static void timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    int running;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

/* CURLMOPT_SOCKETFUNCTION */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct gw_worker *w = userp;
    struct sock_watch *sw = sock_watch(w, s);
    if (!sw) return -1;
    sw->easy = easy;
    if (what == CURL_POLL_REMOVE) {
        if (sw->ev && !sw->ours) {
            event_free(sw->ev);
            memset(sw, 0, sizeof(*sw));
        } else if (sw->ev) {
            if (!sw->parked && w->n_parked++ == 0) sweep_in(w, sweep_interval_ms(w));
            sw->parked = 1;
            watch(w, sw, s, EV_PERSIST | EV_READ);
        }
        return 0;
    }
    if (sw->parked) w->n_parked--;
    sw->parked = 0;
    watch(w, sw, s,
          (short)(EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                  ((what & CURL_POLL_OUT) ? EV_WRITE : 0)));
    return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: what curl would do, and the socket noted as
 * one whose close we will hear of. */
curl_socket_t gw_upstream_open_socket_cb(void *clientp, curlsocktype purpose,
                                         struct curl_sockaddr *a)
{
    (void)purpose;
    struct gw_worker *w = clientp;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s == CURL_SOCKET_BAD) return s;
    struct sock_watch *sw = sock_watch(w, s);
    if (!sw) {
        close(s);
        return CURL_SOCKET_BAD;
    }
    /* An event left on this number by a socket closed behind our back
     * (curl's resolver socketpair, whose REMOVE may not have come) would
     * make watch() believe the new socket is registered already. */
    if (sw->ev) {
        if (sw->parked) w->n_parked--;
        event_free(sw->ev);
        memset(sw, 0, sizeof(*sw));
    }
    sw->ours = 1;
    return s;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the event goes before the fd does. */
int gw_upstream_close_socket_cb(void *clientp, curl_socket_t s)
{
    struct gw_worker *w = clientp;
    struct sock_watch *sw = (size_t)s < w->n_sock_watch ? sock_watch(w, s) : NULL;
    if (sw && sw->ev) {
        if (sw->parked) w->n_parked--;
        event_free(sw->ev);
    }
    if (sw) memset(sw, 0, sizeof(*sw));
    return close(s);
}

/* CURLMOPT_TIMERFUNCTION: -1 removes the timer; 0 means "as soon as
 * possible", done from the loop (never recursively from inside curl). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct gw_worker *w = userp;
    if (timeout_ms < 0) {
        evtimer_del(w->curl_timer);
        return 0;
    }
    if (timeout_ms == 0) {
        /* "As soon as possible": in this loop iteration, not the next one
         * (an evtimer of 0 costs a pass through epoll_wait first). */
        evtimer_del(w->curl_timer);
        event_active(w->curl_timer, EV_TIMEOUT, 1);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(w->curl_timer, &tv);
    return 0;
}

/* --- idle connections ------------------------------------------------------
 * libcurl 7.88 looks through its connection cache (closing connections the
 * upstream has closed, and those idle longer than CURLOPT_MAXAGE_CONN) only
 * when a transfer starts (create_conn -> prune_dead_connections, at most
 * once a second). On a worker without traffic nothing starts: connections
 * the upstream closed keep their descriptors, and live ones are kept
 * forever, where Kong closes them after upstream_keepalive_idle_timeout.
 * So while connections are parked a timer starts a "janitor" transfer now
 * and then: curl prunes its cache first, judging age by the janitor's own
 * MAXAGE_CONN, then fails to connect to a Unix socket path that cannot
 * exist (ENOTDIR: no network, nothing to wait for). */
#define JANITOR_SOCKET_PATH "/dev/null/sluice-pool-sweep"

/* libcurl 7.88 drops a connection when its idle time in whole seconds,
 * rounded down, is above MAXAGE_CONN: one less than the timeout makes
 * "idle for the timeout or longer". */
long gw_upstream_maxage(const struct gw_worker *w)
{
    return (long)w->settings->upstream_idle_timeout - 1;
}

static long sweep_interval_ms(const struct gw_worker *w)
{
    /* Every half idle timeout, within 1 s (curl prunes once a second at
     * most) and 10 s: an idle connection closes at most that late (plus
     * up to a second of MAXAGE_CONN's whole-second rounding). */
    long ms = (long)w->settings->upstream_idle_timeout * 500;
    return ms < 1000 ? 1000 : ms > 10000 ? 10000 : ms;
}

/* Arms the sweep ms from now, unless it is due sooner already: a stream
 * of closing connections must not push it back again and again. */
static void sweep_in(struct gw_worker *w, long ms)
{
    struct timeval due, now, tv = {ms / 1000, (ms % 1000) * 1000};
    if (evtimer_pending(w->pool_sweep, &due) &&
        event_base_gettimeofday_cached(w->base, &now) == 0) {
        struct timeval want;
        evutil_timeradd(&now, &tv, &want);
        if (evutil_timercmp(&due, &want, <=)) return;
    }
    evtimer_add(w->pool_sweep, &tv);
}

static void janitor_done(struct gw_worker *w)
{
    curl_multi_remove_handle(w->multi, w->janitor);
    w->janitor_running = 0;
}

static void pool_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct gw_worker *w = arg;
    if (w->n_parked == 0) return; /* re-armed when one is parked again */
    if (!w->janitor_running && w->janitor &&
        curl_multi_add_handle(w->multi, w->janitor) == CURLM_OK)
        w->janitor_running = 1;
    sweep_in(w, sweep_interval_ms(w));
}

static CURL *janitor_new(struct gw_worker *w)
{
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    curl_easy_setopt(e, CURLOPT_URL, "http://localhost/");
    curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, JANITOR_SOCKET_PATH);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, gw_upstream_maxage(w));
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, gw_upstream_close_socket_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, w);
    return e;
}

int gw_upstream_init(struct gw_worker *w)
{
    w->multi = curl_multi_init();
    if (!w->multi) return -1;
    w->curl_timer = evtimer_new(w->base, timer_event_cb, w);
    w->pool_sweep = evtimer_new(w->base, pool_sweep_cb, w);
    w->janitor = janitor_new(w);
    if (!w->curl_timer || !w->pool_sweep || !w->janitor) return -1;
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)UPSTREAM_POOL_MAX);
    /* Multiplex HTTP/2 upstream requests over one connection. */
    curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    return 0;
}

/* --- parsed URLs ---------------------------------------------------------
 * An open-addressing table that only grows to URL_CACHE_MAX entries and
 * never evicts: a CURLU handed to a transfer must outlive it, and the URLs
 * that repeat (one per ai-proxy route and provider) are few. A worker that
 * meets more distinct URLs passes the rest as strings, as before. */
#define URL_CACHE_SLOTS 128 /* power of two, twice URL_CACHE_MAX */
#define URL_CACHE_MAX 64

struct url_slot {
    uint64_t hash;
    char *url;
    CURLU *u;
};
struct url_cache {
    size_t n;
    struct url_slot slot[URL_CACHE_SLOTS];
};

void *gw_upstream_parsed_url(struct gw_worker *w, const char *url)
{
    struct url_cache *c = w->url_cache;
    if (!c && !(c = w->url_cache = calloc(1, sizeof(*c)))) return NULL;
    uint64_t h = gw_hash_bytes(url, strlen(url));
    size_t i = (size_t)h & (URL_CACHE_SLOTS - 1);
    for (; c->slot[i].url; i = (i + 1) & (URL_CACHE_SLOTS - 1))
        if (c->slot[i].hash == h && strcmp(c->slot[i].url, url) == 0) return c->slot[i].u;
    if (c->n >= URL_CACHE_MAX) return NULL;
    /* The same parse CURLOPT_URL would do, once. */
    CURLU *u = curl_url();
    char *copy = strdup(url), *zone = NULL;
    if (!u || !copy || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) {
        /* An IPv6 zone id is lost when libcurl < 8.3 copies a CURLU. */
        curl_free(zone);
        curl_url_cleanup(u);
        free(copy);
        return NULL;
    }
    c->slot[i] = (struct url_slot){h, copy, u};
    c->n++;
    return u;
}

static void url_cache_free(struct gw_worker *w)
{
    struct url_cache *c = w->url_cache;
    if (!c) return;
    for (size_t i = 0; i < URL_CACHE_SLOTS; i++) {
        free(c->slot[i].url);
        curl_url_cleanup(c->slot[i].u);
    }
    free(c);
    w->url_cache = NULL;
}

void gw_upstream_cleanup(struct gw_worker *w)
{
    if (w->janitor_running) janitor_done(w);
    if (w->janitor) curl_easy_cleanup(w->janitor);
    w->janitor = NULL;
    if (w->multi) curl_multi_cleanup(w->multi);   /* closes sockets through our callback */
    if (w->pool_sweep) event_free(w->pool_sweep); /* after: the callbacks may arm it */
    w->pool_sweep = NULL;
    w->multi = NULL;
    struct sock_watch *v = w->sock_watch;
    for (size_t i = 0; i < w->n_sock_watch; i++)
        if (v[i].ev) event_free(v[i].ev);
    free(w->sock_watch);
    w->sock_watch = NULL;
    w->n_sock_watch = 0;
    for (size_t i = 0; i < w->n_easy_pool; i++)
        curl_easy_cleanup(w->easy_pool[i]);
    free(w->easy_pool);
    w->easy_pool = NULL;
    w->n_easy_pool = 0;
    if (w->curl_timer) event_free(w->curl_timer);
    w->curl_timer = NULL;
    url_cache_free(w); /* after the handles: none may point at a CURLU */
}

/* Easy handles are reset and reused: curl_easy_init() allocates and sets
 * up far more than curl_easy_reset() clears. */
CURL *gw_upstream_easy_get(struct gw_worker *w, int *fresh)
{
    *fresh = w->n_easy_pool == 0;
    if (w->n_easy_pool) return w->easy_pool[--w->n_easy_pool];
    return curl_easy_init();
}

/* Every option a transfer may set for itself goes back to its default, so
 * that nothing of one request leaks into the next: the header list and
 * the callbacks' data point into the finished request's arena. */
static void clear_transfer_options(CURL *e, int tls_blobs)
{
    if (tls_blobs) { /* a service's CAs or client certificate (proxy.c) */
        /* The CA directory libcurl was built with, as a new handle has it. */
        curl_easy_setopt(e, CURLOPT_CAPATH, curl_version_info(CURLVERSION_NOW)->capath);
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, NULL);
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, NULL);
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, NULL);
    }
    /* POSTFIELDS first: setting it selects POST; HTTPGET then selects GET
     * and clears upload and NOBODY. */
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, NULL);
    curl_easy_setopt(e, CURLOPT_READDATA, NULL);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, NULL);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, NULL);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, NULL);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
    /* The request's CURLU dies with it: the handle must not keep it. */
    curl_easy_setopt(e, CURLOPT_CURLU, NULL);
}

/* A handle about to be freed must not stay behind as a socket's user. */
static void forget_easy(struct gw_worker *w, CURL *easy)
{
    struct sock_watch *v = w->sock_watch;
    for (size_t i = 0; i < w->n_sock_watch; i++)
        if (v[i].easy == easy) v[i].easy = NULL;
}

void gw_upstream_easy_put(struct gw_worker *w, CURL *easy, int tls_blobs)
{
    if (w->n_easy_pool == w->cap_easy_pool) {
        if (w->cap_easy_pool >= EASY_POOL_MAX) {
            forget_easy(w, easy);
            curl_easy_cleanup(easy);
            return;
        }
        size_t cap = w->cap_easy_pool ? w->cap_easy_pool * 2 : 16;
        CURL **v = realloc(w->easy_pool, cap * sizeof(*v));
        if (!v) {
            forget_easy(w, easy);
            curl_easy_cleanup(easy);
            return;
        }
        w->easy_pool = v;
        w->cap_easy_pool = cap;
    }
    clear_transfer_options(easy, tls_blobs);
    w->easy_pool[w->n_easy_pool++] = easy;
}

int gw_upstream_add(struct gw_worker *w, CURL *easy)
{
    CURLMcode rc = curl_multi_add_handle(w->multi, easy);
    if (rc != CURLM_OK) {
        gw_error("curl_multi_add_handle: %s", curl_multi_strerror(rc));
        return -1;
    }
    return 0;
}

void gw_upstream_remove(struct gw_worker *w, CURL *easy)
{
    curl_multi_remove_handle(w->multi, easy);
}
