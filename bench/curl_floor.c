/*
 * curl_floor: what libcurl alone costs per keep-alive HTTP/1.1 GET when it is
 * driven the way a proxy drives it (multi_socket API under libevent), with no
 * proxy around it. Run under callgrind or strace by bench/curl_floor.sh.
 *
 *   curl_floor URL N min|proxy|reuse|curlu|cached [C]
 *
 * min:   one easy handle reused as is; only the options a GET needs.
 * proxy: the same handle curl_easy_reset() and set up again per request
 *        with the options sluice's setup_transfer() set for a plain GET
 *        before 227bfa3.
 * reuse: what sluice does since 227bfa3: the options every transfer shares
 *        set once; per request, the per-transfer ones cleared (as
 *        src/upstream.c's clear_transfer_options) and set again.
 *
 * C (default 1) lanes run at once, each an easy handle that starts its next
 * request as soon as its last one is done (add the handle, wait for done,
 * remove it, next), as wrk's C connections do; each lane keeps one upstream
 * connection, and the run fails if curl opened more than C. The socket and
 * timer callbacks follow sluice's src/upstream.c, so the syscalls counted are
 * libcurl's plus the epoll_wait a response that is not there yet needs.
 *
 * Prints "requests=N seconds=S cpu_us_per_request=U" (U: the process's user +
 * system CPU time over the loop, divided by N); exits 1 if a transfer fails
 * or is not 200.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>

#include <curl/curl.h>
#include <event2/event.h>

#define MAX_FD 4096
#define MAX_LANES 256

/* One event per socket, indexed by fd. A keep-alive socket that curl stops
 * watching between transfers stays registered for reading ("parked"), as in
 * sluice: removing and re-adding it would cost two epoll_ctl per request that
 * belong to the driver, not to libcurl. */
struct sock_watch {
    struct event *ev;
    short kind; /* registered interest, 0 if not pending */
    int parked;
};

struct floor_state;

/* One client "connection" of the load: an easy handle and its current URL. */
struct lane {
    struct floor_state *st;
    CURL *easy;
    CURLU *req_url; /* curlu: this request's copy with its path; cached: the whole URL */
};

struct floor_state {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct sock_watch socks[MAX_FD];
    struct lane lanes[MAX_LANES];
    int nlanes;
    const char *url;
    struct curl_slist *hdrs;
    int proxy_mode; /* 0 min, 1 proxy, 2 reuse, 3 curlu, 4 cached */
    CURLU *origin;  /* curlu: the origin, parsed once (sluice: per service) */
    long n, started, completed, connects;
    int failed;
};

static void die(const char *msg)
{
    fprintf(stderr, "curl_floor: %s\n", msg);
    exit(1);
}

static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static void start_one(struct lane *ln);

/* Completion is read only after curl_multi_socket_action() has returned:
 * handles must not be removed from inside curl's callbacks. The next request
 * starts from here, inside the running loop, as a proxy starts one from its
 * own event handlers: leaving and re-entering event_base_dispatch() per
 * request would add an epoll_wait that is the harness's, not libcurl's. */
static void check_done(struct floor_state *st)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(st->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURLcode result = msg->data.result;
        CURL *easy = msg->easy_handle;
        struct lane *ln = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&ln);
        curl_multi_remove_handle(st->multi, easy);
        long status = 0, new_conns = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &new_conns);
        st->completed++;
        st->connects += new_conns;
        if (result != CURLE_OK || status != 200) {
            fprintf(stderr, "curl_floor: request %ld: %s, status %ld\n", st->completed,
                    curl_easy_strerror(result), status);
            st->failed = 1;
            event_base_loopbreak(st->base);
            return;
        }
        if (st->completed == st->n) {
            event_base_loopbreak(st->base);
            return;
        }
        if (st->started < st->n) start_one(ln);
    }
}

static void socket_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct floor_state *st = arg;
    struct sock_watch *sw = &st->socks[fd];
    if (sw->parked) {
        /* Idle connection readable: closed or garbage. Let curl find out
         * when it next checks the connection. */
        event_del(sw->ev);
        sw->kind = 0;
        return;
    }
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(st->multi, fd, action, &running);
    check_done(st);
}

static void watch(struct floor_state *st, struct sock_watch *sw, curl_socket_t s, short kind)
{
    if (sw->kind == kind) return;
    if (!sw->ev) {
        sw->ev = event_new(st->base, s, kind, socket_event_cb, st);
        if (!sw->ev) die("event_new failed");
    } else {
        if (sw->kind) event_del(sw->ev);
        event_assign(sw->ev, st->base, s, kind, socket_event_cb, st);
    }
    event_add(sw->ev, NULL);
    sw->kind = kind;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    struct floor_state *st = userp;
    if (s < 0 || s >= MAX_FD) return -1;
    struct sock_watch *sw = &st->socks[s];
    if (what == CURL_POLL_REMOVE) {
        if (sw->ev) {
            sw->parked = 1;
            watch(st, sw, s, EV_PERSIST | EV_READ);
        }
        return 0;
    }
    sw->parked = 0;
    watch(st, sw, s,
          (short)(EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                  ((what & CURL_POLL_OUT) ? EV_WRITE : 0)));
    return 0;
}

/* The event goes before the fd does, so a reused fd number never meets a
 * stale event. */
static int close_socket_cb(void *clientp, curl_socket_t s)
{
    struct floor_state *st = clientp;
    if (s >= 0 && s < MAX_FD && st->socks[s].ev) {
        event_free(st->socks[s].ev);
        memset(&st->socks[s], 0, sizeof(st->socks[s]));
    }
    return close(s);
}

static void timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct floor_state *st = arg;
    int running;
    curl_multi_socket_action(st->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(st);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct floor_state *st = userp;
    evtimer_del(st->timer);
    if (timeout_ms < 0) return 0;
    if (timeout_ms == 0) {
        /* Run it in this loop pass; an evtimer of 0 would cost an
         * epoll_wait first. */
        event_active(st->timer, EV_TIMEOUT, 1);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(st->timer, &tv);
    return 0;
}

static const char *const proxy_headers[] = {
    "X-Forwarded-For: 127.0.0.1",
    "X-Real-IP: 127.0.0.1",
    "X-Forwarded-Proto: http",
    "X-Forwarded-Host: 127.0.0.1",
    "X-Forwarded-Port: 8000",
    "X-Forwarded-Path: /hello",
    "Via: 1.1 sluice",
    "Accept:", /* empty value: curl sends none of its defaults */
    "Expect:",
};

/* Per request in proxy mode, as sluice's setup_transfer() does for a GET
 * (the header list is built once: building it is sluice's cost). */
static void setup_proxy(struct lane *ln)
{
    struct floor_state *st = ln->st;
    CURL *e = ln->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, st->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, ln);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, st);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, st);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, st->hdrs);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, st);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
}

/* reuse mode: once per handle, as sluice's set_shared_options(). */
static void setup_shared(struct lane *ln)
{
    struct floor_state *st = ln->st;
    CURL *e = ln->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, st);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
}

/* The URL of one request in the reuse modes. reuse: the string, which
 * libcurl parses on every transfer. curlu: as sluice since 0bc2713, a copy
 * of the parsed origin with the request's path set (CURLOPT_CURLU).
 * cached: as sluice since aaa382e for URLs a plugin sets, the whole URL
 * parsed once and handed over as it is. */
static void set_reuse_url(struct lane *ln)
{
    struct floor_state *st = ln->st;
    CURL *e = ln->easy;
    if (st->proxy_mode == 2) {
        curl_easy_setopt(e, CURLOPT_URL, st->url);
        return;
    }
    if (st->proxy_mode == 4) {
        if (!ln->req_url) {
            ln->req_url = curl_url();
            if (!ln->req_url || curl_url_set(ln->req_url, CURLUPART_URL, st->url, 0))
                die("cannot parse the URL");
        }
        curl_easy_setopt(e, CURLOPT_CURLU, ln->req_url);
        return;
    }
    if (!st->origin) {
        /* Split once: the origin is what a service's url gives sluice. */
        CURLU *u = curl_url();
        char *path = NULL;
        if (!u || curl_url_set(u, CURLUPART_URL, st->url, 0) ||
            curl_url_get(u, CURLUPART_PATH, &path, 0))
            die("cannot parse the URL");
        static char path_copy[1024];
        snprintf(path_copy, sizeof(path_copy), "%s", path);
        curl_free(path);
        curl_url_set(u, CURLUPART_PATH, NULL, 0);
        st->origin = u;
        st->url = path_copy; /* from now on: the request path */
    }
    curl_easy_setopt(e, CURLOPT_CURLU, NULL);
    curl_url_cleanup(ln->req_url); /* the previous transfer's, done with */
    ln->req_url = curl_url_dup(st->origin);
    if (!ln->req_url || curl_url_set(ln->req_url, CURLUPART_PATH, st->url, 0))
        die("cannot set the path");
    curl_easy_setopt(e, CURLOPT_CURLU, ln->req_url);
}

/* reuse mode, per request: the clean-up of the previous transfer and the
 * per-transfer options, as sluice's clear_transfer_options() and
 * setup_transfer() for a plain GET. */
static void setup_reuse(struct lane *ln)
{
    struct floor_state *st = ln->st;
    CURL *e = ln->easy;
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
    set_reuse_url(ln);
    curl_easy_setopt(e, CURLOPT_PRIVATE, ln);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, st);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, st);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, st->hdrs);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
}

/* curl_multi_add_handle() asks for a timeout of 0 (timer_cb), and the
 * transfer then runs from the loop. */
static void start_one(struct lane *ln)
{
    struct floor_state *st = ln->st;
    if (st->proxy_mode == 1) setup_proxy(ln);
    if (st->proxy_mode >= 2) setup_reuse(ln);
    st->started++;
    if (curl_multi_add_handle(st->multi, ln->easy) != CURLM_OK) die("curl_multi_add_handle failed");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* User + system CPU time of the process, in seconds. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    /* The libcurl that is loaded, which LD_LIBRARY_PATH may have changed. */
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", curl_version_info(CURLVERSION_NOW)->version);
        return 0;
    }
    if (argc != 4 && argc != 5) die("usage: curl_floor URL N min|proxy|reuse|curlu|cached [C]");
    const char *url = argv[1];
    long n = strtol(argv[2], NULL, 10);
    long c = argc == 5 ? strtol(argv[4], NULL, 10) : 1;
    static const char *const modes[] = {"min", "proxy", "reuse", "curlu", "cached", NULL};
    int proxy_mode = 0;
    while (modes[proxy_mode] && strcmp(modes[proxy_mode], argv[3]) != 0)
        proxy_mode++;
    if (n <= 0) die("N must be a positive number");
    if (!modes[proxy_mode]) die("mode must be min, proxy, reuse, curlu or cached");
    if (c < 1 || c > MAX_LANES || c > n) die("C must be between 1 and 256, and at most N");

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) die("curl_global_init failed");
    static struct floor_state st; /* static: the fd table is large */
    st.base = event_base_new();
    st.multi = curl_multi_init();
    if (!st.base || !st.multi) die("init failed");
    st.timer = evtimer_new(st.base, timer_event_cb, &st);
    curl_multi_setopt(st.multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(st.multi, CURLMOPT_SOCKETDATA, &st);
    curl_multi_setopt(st.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(st.multi, CURLMOPT_TIMERDATA, &st);
    if (proxy_mode) {
        curl_multi_setopt(st.multi, CURLMOPT_MAXCONNECTS, 256L);
        curl_multi_setopt(st.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    }

    st.nlanes = (int)c;
    st.url = url;
    st.n = n;
    st.proxy_mode = proxy_mode;
    for (size_t i = 0; i < sizeof(proxy_headers) / sizeof(proxy_headers[0]); i++) {
        struct curl_slist *t = curl_slist_append(st.hdrs, proxy_headers[i]);
        if (!t) die("curl_slist_append failed");
        st.hdrs = t;
    }
    for (int i = 0; i < st.nlanes; i++) {
        struct lane *ln = &st.lanes[i];
        CURL *e = curl_easy_init();
        if (!e) die("curl_easy_init failed");
        ln->st = &st;
        ln->easy = e;
        if (proxy_mode >= 2) setup_shared(ln);
        if (!proxy_mode) {
            /* Set once; the handle keeps them across transfers. */
            curl_easy_setopt(e, CURLOPT_URL, url);
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(e, CURLOPT_PROXY, "");
            curl_easy_setopt(e, CURLOPT_PRIVATE, ln);
        }
    }

    double t0 = now_s(), cpu0 = cpu_s();
    for (int i = 0; i < st.nlanes; i++)
        start_one(&st.lanes[i]);
    if (event_base_dispatch(st.base) < 0) die("event_base_dispatch failed");
    double secs = now_s() - t0, cpu = cpu_s() - cpu0;
    if (st.failed) return 1;
    if (st.completed != n) die("event loop ended before the last request");
    /* More than one connect a lane would measure handshakes, not keep-alive
     * GETs. */
    if (st.connects > st.nlanes) {
        fprintf(stderr,
                "curl_floor: %ld connections opened, expected at most %d (keep-alive broken)\n",
                st.connects, st.nlanes);
        return 1;
    }
    printf("requests=%ld seconds=%.3f cpu_us_per_request=%.2f\n", n, secs, cpu * 1e6 / (double)n);

    /* Events go before curl closes their sockets. */
    for (int fd = 0; fd < MAX_FD; fd++)
        if (st.socks[fd].ev) event_free(st.socks[fd].ev);
    memset(st.socks, 0, sizeof(st.socks));
    for (int i = 0; i < st.nlanes; i++) {
        curl_easy_cleanup(st.lanes[i].easy);
        curl_url_cleanup(st.lanes[i].req_url);
    }
    curl_url_cleanup(st.origin);
    curl_multi_cleanup(st.multi);
    curl_slist_free_all(st.hdrs);
    event_free(st.timer);
    event_base_free(st.base);
    curl_global_cleanup();
    return 0;
}
