/*
 * Review of plugins/rate-limiting/redis_loop.c (commit bd2d133): hiredis
 * 0.14.1 async contexts on a libevent base through rl_redis_attach, driven
 * here directly (no gateway), against fake servers on loopback sockets
 * (a thread each) and, when redis-server is installed, a real Redis.
 *
 * Under ASan a use of the freed struct loop_events (a flush or write event
 * run after cleanup) aborts the test; a busy loop shows as a loop-pass count
 * far above the number of timer ticks.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "gw_test.h"
#include "../../plugins/rate-limiting/redis_loop.h"

/* ------------------------------------------------------------ helpers */

/* write(2) as seen by hiredis (libhiredis.so resolves write here first):
 * counts the calls on one descriptor, and those that found no room. */
static int watch_fd = -1;
static long watch_writes, watch_eagain;

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    ssize_t r = real(fd, buf, n);
    if (fd == watch_fd && fd >= 0) {
        int e = errno;
        watch_writes++;
        if (r < 0 && e == EAGAIN) watch_eagain++;
        errno = e;
    }
    return r;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int listen_on(int *port, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, backlog) < 0) {
        close(fd);
        return -1;
    }
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Drives the loop until *done or `secs` pass; returns the loop passes. A
 * 20 ms persistent tick keeps EVLOOP_ONCE from blocking for ever. */
static void tick_cb(evutil_socket_t fd, short w, void *arg)
{
    (void)fd, (void)w, (void)arg;
}
static long drive(struct event_base *base, const int *done, double secs)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 20000};
    event_add(tick, &tv);
    long passes = 0;
    double end = now_s() + secs;
    while (!*done && now_s() < end) {
        event_base_loop(base, EVLOOP_ONCE);
        passes++;
    }
    event_free(tick);
    return passes;
}

struct counts {
    int replies, null_replies, connected, connect_err, disconnected, disconnect_err;
    int done;
    long long last_int;
    char last_str[64];
};

static void on_conn(const redisAsyncContext *ac, int status)
{
    struct counts *k = ac->data;
    if (status == REDIS_OK)
        k->connected++;
    else {
        k->connect_err++;
        k->done = 1;
    }
}

static void on_disc(const redisAsyncContext *ac, int status)
{
    struct counts *k = ac->data;
    k->disconnected++;
    if (status != REDIS_OK) k->disconnect_err++;
    k->done = 1;
}

static void count_reply(redisAsyncContext *ac, void *reply_, void *priv)
{
    (void)priv;
    struct counts *k = ac->data;
    redisReply *rp = reply_;
    if (!rp) {
        k->null_replies++;
        return;
    }
    k->replies++;
    if (rp->type == REDIS_REPLY_INTEGER) k->last_int = rp->integer;
    if (rp->type == REDIS_REPLY_STATUS || rp->type == REDIS_REPLY_STRING ||
        rp->type == REDIS_REPLY_ERROR)
        snprintf(k->last_str, sizeof(k->last_str), "%s", rp->str);
}

static redisAsyncContext *open_ctx(struct event_base *base, int port, struct counts *k)
{
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);
    if (!ac || ac->err) {
        fprintf(stderr, "redisAsyncConnect: %s\n", ac ? ac->errstr : "oom");
        if (ac) redisAsyncFree(ac);
        return NULL;
    }
    ac->data = k;
    CHECK_INT(rl_redis_attach(ac, base), 0);
    redisAsyncSetConnectCallback(ac, on_conn);
    redisAsyncSetDisconnectCallback(ac, on_disc);
    return ac;
}

/* ------------------------------------------------------------ fake server */

enum fake_mode {
    FAKE_SLOW_READER, /* reads nothing for delay_ms, then everything; +OK per command */
    FAKE_CUT_REPLY,   /* after the first bytes: half a bulk reply, then close */
    FAKE_GREET_CLOSE, /* at once: "-ERR max clients" and close (commands unread) */
    FAKE_TRICKLE,     /* after delay_ms, reads 64 KB every 2 ms; +OK per command */
};

struct fake {
    int lfd, port;
    enum fake_mode mode;
    int delay_ms;
    long long received;
    int commands;
    pthread_t th;
};

/* Counts RESP commands ("*N" at the start of a command) in a stream. */
struct resp_scan {
    int state; /* 0: expect '*', 1: in header, ... simplified bulk parser */
    long args_left, bulk_left;
    char line[32];
    int ll;
};

/* Returns how many commands ended within buf. */
static int resp_feed(struct resp_scan *s, const char *buf, size_t n)
{
    int done = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (s->bulk_left > 0) {
            size_t take = n - i < (size_t)s->bulk_left ? n - i : (size_t)s->bulk_left;
            s->bulk_left -= (long)take;
            i += take - 1;
            if (s->bulk_left == 0 && s->args_left == 0) done++;
            continue;
        }
        if (ch == '\n') {
            s->line[s->ll < 31 ? s->ll : 31] = 0;
            if (s->line[0] == '*')
                s->args_left = atol(s->line + 1);
            else if (s->line[0] == '$') {
                s->bulk_left = atol(s->line + 1) + 2;
                s->args_left--;
            }
            s->ll = 0;
            continue;
        }
        if (ch != '\r' && s->ll < 31) s->line[s->ll++] = ch;
    }
    return done;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    int c = accept(f->lfd, NULL, NULL);
    if (c < 0) return NULL;
    char *buf = malloc(1 << 16);
    struct resp_scan sc = {0};
    if (f->mode == FAKE_GREET_CLOSE) {
        const char *m = "-ERR max number of clients reached\r\n";
        (void)!write(c, m, strlen(m));
        close(c);
        free(buf);
        return NULL;
    }
    if (f->mode == FAKE_SLOW_READER || f->mode == FAKE_TRICKLE)
        usleep((useconds_t)f->delay_ms * 1000);
    for (;;) {
        ssize_t n = read(c, buf, 1 << 16);
        if (n <= 0) break;
        f->received += n;
        if (f->mode == FAKE_CUT_REPLY) {
            const char *m = "$10\r\nabc";
            (void)!write(c, m, strlen(m));
            usleep(20000);
            break;
        }
        if (f->mode == FAKE_TRICKLE) usleep(2000);
        int k = resp_feed(&sc, buf, (size_t)n);
        f->commands += k;
        for (int j = 0; j < k; j++)
            (void)!write(c, "+OK\r\n", 5);
    }
    close(c);
    free(buf);
    return NULL;
}

static int fake_start(struct fake *f, enum fake_mode mode, int delay_ms)
{
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->delay_ms = delay_ms;
    f->lfd = listen_on(&f->port, 16);
    if (f->lfd < 0) return -1;
    pthread_create(&f->th, NULL, fake_main, f);
    return 0;
}

static void fake_stop(struct fake *f)
{
    shutdown(f->lfd, SHUT_RDWR);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

/* ------------------------------------------------------------ real redis */

static int redis_port;
static char redis_dir[64];

static int redis_start(void)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0) return -1;
    int p, fd = listen_on(&p, 1);
    if (fd < 0) return -1;
    close(fd);
    snprintf(redis_dir, sizeof(redis_dir), "/tmp/rl-loop-review-%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s && redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
             "--daemonize yes --dir %s --pidfile %s/redis.pid --logfile %s/redis.log",
             redis_dir, p, redis_dir, redis_dir, redis_dir);
    if (system(cmd) != 0) return -1;
    for (int i = 0; i < 100; i++) {
        redisContext *c = redisConnect("127.0.0.1", p);
        if (c && !c->err) {
            redisFree(c);
            redis_port = p;
            return 0;
        }
        if (c) redisFree(c);
        usleep(20000);
    }
    return -1;
}

static void redis_stop(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/redis.pid", redis_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        int pid = 0;
        if (fscanf(f, "%d", &pid) == 1 && pid > 0) kill(pid, SIGTERM);
        fclose(f);
    }
    usleep(100000);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", redis_dir);
    (void)!system(cmd);
}

/* ------------------------------------------------------------ tests */

/* Commands sent before the connection is up, then one from inside each
 * reply callback (chained), all reach Redis and are answered. */
struct chain {
    struct counts k;
    int left;
};

static void chain_reply(redisAsyncContext *ac, void *reply_, void *priv)
{
    struct chain *ch = priv;
    count_reply(ac, reply_, NULL);
    if (reply_ && ch->left-- > 0)
        redisAsyncCommand(ac, chain_reply, ch, "INCR rl-loop-review-%d", (int)getpid());
    else if (reply_) {
        ch->k.done = 1;
    }
}

static void real_redis_chained_commands(void)
{
    if (!redis_port) return;
    struct event_base *base = event_base_new();
    struct chain ch = {.left = 50};
    redisAsyncContext *ac = open_ctx(base, redis_port, &ch.k);
    if (!ac) return;
    redisAsyncCommand(ac, chain_reply, &ch, "DEL rl-loop-review-%d", (int)getpid());
    long passes = drive(base, &ch.k.done, 5);
    CHECK_INT(ch.k.connected, 1);
    CHECK_INT(ch.k.replies, 51);
    CHECK_INT(ch.k.last_int, 50);
    /* one reply per pass at most (write, read): not a spin */
    CHECK(passes < 500);
    redisAsyncFree(ac);
    CHECK_INT(ch.k.disconnected, 1);
    event_base_free(base);
}

/* redisAsyncFree from inside a reply callback, right after a command issued
 * in the same callback activated the flush: hiredis defers the free to the
 * end of the callback and cleanup must take the flush off the active queue
 * (under ASan, on_flush on the freed struct would abort). */
static void free_after(redisAsyncContext *ac, void *reply_, void *priv)
{
    struct counts *k = ac->data;
    count_reply(ac, reply_, NULL);
    if (!reply_) return;
    if (k->replies == 1) {
        CHECK_INT(redisAsyncCommand(ac, count_reply, NULL, "PING"), REDIS_OK);
        redisAsyncFree(ac);
        k->done = 1;
    }
}

static void real_redis_free_inside_callback_with_flush_active(void)
{
    if (!redis_port) return;
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, redis_port, &k);
    if (!ac) return;
    redisAsyncCommand(ac, free_after, NULL, "PING");
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    drive(base, &k.done, 3);
    int none = 0;
    drive(base, &none, 0.2); /* the flush, if still queued, would run here */
    /* the first PING answered; the second, if not in the same read, and
     * the one issued in the callback fail with NULL */
    CHECK(k.replies >= 1);
    CHECK_INT(k.replies + k.null_replies, 3);
    CHECK_INT(k.disconnected, 1);
    event_base_free(base);
}

/* redisAsyncFree outside any hiredis callback (like op_timeout) in the same
 * loop pass as a command that activated the flush. */
struct free_timer {
    redisAsyncContext *ac;
    struct counts *k;
};
static void cmd_then_free(evutil_socket_t fd, short w, void *arg)
{
    (void)fd, (void)w;
    struct free_timer *ft = arg;
    redisAsyncCommand(ft->ac, count_reply, NULL, "PING");
    redisAsyncFree(ft->ac);
    ft->k->done = 1;
}

static void real_redis_free_from_timer_with_flush_active(void)
{
    if (!redis_port) return;
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, redis_port, &k);
    if (!ac) return;
    int up = 0;
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    /* wait for the connection and the first reply */
    for (int i = 0; i < 200 && k.replies < 1; i++)
        event_base_loop(base, EVLOOP_ONCE);
    (void)up;
    CHECK_INT(k.replies, 1);
    struct free_timer ft = {ac, &k};
    struct event *t = evtimer_new(base, cmd_then_free, &ft);
    struct timeval tv = {0, 1000};
    evtimer_add(t, &tv);
    drive(base, &k.done, 2);
    int none = 0;
    drive(base, &none, 0.2);
    CHECK_INT(k.null_replies, 1);
    CHECK_INT(k.disconnected, 1);
    event_free(t);
    event_base_free(base);
}

/* A 16 MB command to a server that does not read for 300 ms: partial
 * writes, the rest through the write event; no spinning while the socket is
 * full; every byte arrives and the reply comes back. */
static void partial_write_slow_reader(void)
{
    struct fake f;
    if (fake_start(&f, FAKE_SLOW_READER, 300) < 0) return;
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, f.port, &k);
    if (!ac) return;
    size_t big = 16u << 20;
    char *v = malloc(big);
    memset(v, 'x', big);
    /* first command before connect, the big one once connected */
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    for (int i = 0; i < 200 && !k.connected; i++)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK_INT(k.connected, 1);
    redisAsyncCommand(ac, count_reply, NULL, "SET big %b", v, big);
    double t0 = now_s();
    struct counts *kp = &k;
    int target = 2;
    long passes = 0;
    while (kp->replies < target && now_s() - t0 < 10) {
        int d = 0;
        passes += drive(base, &d, 0.05);
    }
    double el = now_s() - t0;
    CHECK_INT(k.replies, 2);
    CHECK_INT(f.commands, 2);
    CHECK(f.received > (long long)big);
    /* ~20 ms ticks over el seconds, plus write events: a spin would show
     * tens of thousands of passes during the 300 ms the server sleeps */
    CHECK(passes < (long)(el / 0.02) * 4 + 2000);
    if (passes >= (long)(el / 0.02) * 4 + 2000)
        fprintf(stderr, "  passes %ld in %.2fs\n", passes, el);
    /* one more command after the partial-write episode still goes out */
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    target = 3;
    t0 = now_s();
    while (kp->replies < target && now_s() - t0 < 3) {
        int d = 0;
        drive(base, &d, 0.05);
    }
    CHECK_INT(k.replies, 3);
    redisAsyncFree(ac);
    CHECK_INT(k.disconnected, 1);
    event_base_free(base);
    fake_stop(&f);
    free(v);
}

/* Several big commands issued from inside a reply callback while the
 * socket is full: they all get written. */
static void big_from_callback(redisAsyncContext *ac, void *reply_, void *priv)
{
    count_reply(ac, reply_, NULL);
    char *v = priv;
    if (reply_ && v) {
        for (int i = 0; i < 3; i++)
            redisAsyncCommand(ac, count_reply, NULL, "SET big%d %b", i, v, (size_t)(4u << 20));
    }
}

static void partial_writes_issued_from_callback(void)
{
    struct fake f;
    if (fake_start(&f, FAKE_SLOW_READER, 200) < 0) return;
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, f.port, &k);
    if (!ac) return;
    char *v = malloc(4u << 20);
    memset(v, 'y', 4u << 20);
    redisAsyncCommand(ac, big_from_callback, v, "PING");
    double t0 = now_s();
    while (k.replies < 4 && now_s() - t0 < 10) {
        int d = 0;
        drive(base, &d, 0.05);
    }
    CHECK_INT(k.replies, 4);
    CHECK_INT(f.commands, 4);
    redisAsyncFree(ac);
    event_base_free(base);
    fake_stop(&f);
    free(v);
}

/* The server sends half a bulk reply and closes: the callback gets NULL,
 * the disconnect callback an error; the context and events go. */
static void server_cuts_reply(void)
{
    struct fake f;
    if (fake_start(&f, FAKE_CUT_REPLY, 0) < 0) return;
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, f.port, &k);
    if (!ac) return;
    redisAsyncCommand(ac, count_reply, NULL, "GET x");
    redisAsyncCommand(ac, count_reply, NULL, "GET y");
    drive(base, &k.done, 3);
    int none = 0;
    drive(base, &none, 0.1);
    CHECK_INT(k.connected, 1);
    CHECK_INT(k.null_replies, 2);
    CHECK_INT(k.disconnected, 1);
    CHECK_INT(k.disconnect_err, 1);
    /* nothing of ours left on the base */
    CHECK_INT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
    event_base_free(base);
    fake_stop(&f);
}

/* The server greets with an error and closes before reading: hiredis takes
 * it as a spontaneous error reply or EOF; read and write events may both be
 * ready in one pass, and the first to run frees everything. */
static void server_error_greeting(void)
{
    struct fake f;
    if (fake_start(&f, FAKE_GREET_CLOSE, 0) < 0) return;
    usleep(1000);
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, f.port, &k);
    if (!ac) return;
    usleep(50000); /* the greeting and FIN are there before the first pass */
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    drive(base, &k.done, 3);
    int none = 0;
    drive(base, &none, 0.1);
    CHECK_INT(k.done, 1);
    /* the error is the PING's reply when the PING was written first */
    CHECK_INT(k.null_replies + k.replies, 1);
    CHECK_INT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
    event_base_free(base);
    fake_stop(&f);
}

/* A listener whose accept queue is full: the SYN is dropped, the connect
 * stays in progress. (a) Freed from a timer (redis.timeout) while the write
 * event is pending; (b) the listener closes, the retransmitted SYN gets a
 * RST: ECONNREFUSED reported asynchronously through the error event. */
static int fill_backlog(int port, int *c1, int *c2)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    *c1 = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*c1, (struct sockaddr *)&a, sizeof(a)) < 0) return -1;
    *c2 = socket(AF_INET, SOCK_STREAM, 0);
    fcntl(*c2, F_SETFL, O_NONBLOCK);
    (void)!connect(*c2, (struct sockaddr *)&a, sizeof(a));
    usleep(20000);
    return 0;
}

static void free_ctx_timer(evutil_socket_t fd, short w, void *arg)
{
    (void)fd, (void)w;
    struct free_timer *ft = arg;
    redisAsyncFree(ft->ac);
    ft->k->done = 1;
}

static void connect_never_completes_then_freed(void)
{
    int port, c1 = -1, c2 = -1;
    int lfd = listen_on(&port, 0);
    if (lfd < 0 || fill_backlog(port, &c1, &c2) < 0) {
        fprintf(stderr, "  (skipped: cannot fill the backlog)\n");
        return;
    }
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, port, &k);
    if (!ac) return;
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    struct free_timer ft = {ac, &k};
    struct event *t = evtimer_new(base, free_ctx_timer, &ft);
    struct timeval tv = {0, 200000};
    evtimer_add(t, &tv);
    drive(base, &k.done, 3);
    int none = 0;
    drive(base, &none, 0.1);
    CHECK_INT(k.connected, 0);
    CHECK_INT(k.null_replies, 1);
    CHECK_INT(k.disconnected, 0); /* never connected: no disconnect callback */
    event_free(t);
    CHECK_INT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
    event_base_free(base);
    close(c1);
    close(c2);
    close(lfd);
}

static void connect_refused_asynchronously(void)
{
    int port, c1 = -1, c2 = -1;
    int lfd = listen_on(&port, 0);
    if (lfd < 0 || fill_backlog(port, &c1, &c2) < 0) {
        fprintf(stderr, "  (skipped: cannot fill the backlog)\n");
        return;
    }
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, port, &k);
    if (!ac) return;
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    int none = 0;
    drive(base, &none, 0.1);
    CHECK_INT(k.connected + k.connect_err, 0); /* still in progress */
    close(lfd); /* the SYN retransmission (1 s) now meets a closed port */
    drive(base, &k.done, 8);
    drive(base, &none, 0.1);
    CHECK_INT(k.connect_err, 1);
    CHECK_INT(k.null_replies, 1);
    CHECK_INT(k.disconnected, 0);
    CHECK_INT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
    event_base_free(base);
    close(c1);
    close(c2);
}

/* Idle after a reply: no flush or write event left behind (a self-feeding
 * flush would keep the base busy; a leftover write event would fire at once
 * on an idle writable socket). */
static void idle_after_reply_is_quiet(void)
{
    if (!redis_port) return;
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, redis_port, &k);
    if (!ac) return;
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    for (int i = 0; i < 200 && k.replies < 1; i++)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK_INT(k.replies, 1);
    /* only the persistent read event is left: added, not active */
    CHECK_INT(event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE), 0);
    CHECK_INT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 1);
    int none = 0;
    long passes = drive(base, &none, 0.2);
    CHECK(passes <= 15); /* ~10 ticks */
    /* and it still reads: a command now is answered */
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    for (int i = 0; i < 200 && k.replies < 2; i++)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK_INT(k.replies, 2);
    redisAsyncFree(ac);
    CHECK_INT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
    event_base_free(base);
}

/* Redis closes an idle connection (CLIENT KILL from another client): the
 * persistent read event sees EOF; the disconnect callback runs once. */
static void real_redis_server_side_close(void)
{
    if (!redis_port) return;
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, redis_port, &k);
    if (!ac) return;
    redisAsyncCommand(ac, count_reply, NULL, "CLIENT SETNAME rl-loop-review-victim");
    for (int i = 0; i < 200 && k.replies < 1; i++)
        event_base_loop(base, EVLOOP_ONCE);
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    redisReply *rp = redisCommand(c, "CLIENT KILL TYPE normal SKIPME yes");
    if (rp) freeReplyObject(rp);
    redisFree(c);
    drive(base, &k.done, 3);
    CHECK_INT(k.disconnected, 1);
    CHECK_INT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
    event_base_free(base);
}

/* The design: after a partial write, the rest waits for a real write
 * event. A write that finds no room (EAGAIN) is a wasted system call; the
 * only one expected is none (the flush's first write is partial, not
 * refused). Here the server drains a 16 MB command slowly. */
static void partial_write_waits_for_write_event(void)
{
    struct fake f;
    if (fake_start(&f, FAKE_TRICKLE, 50) < 0) return;
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, f.port, &k);
    if (!ac) return;
    int sndbuf = 64 * 1024;
    setsockopt(ac->c.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    for (int i = 0; i < 200 && k.replies < 1; i++)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK_INT(k.replies, 1);
    size_t big = 16u << 20;
    char *v = malloc(big);
    memset(v, 'z', big);
    watch_fd = ac->c.fd;
    watch_writes = watch_eagain = 0;
    redisAsyncCommand(ac, count_reply, NULL, "SET big %b", v, big);
    double t0 = now_s();
    while (k.replies < 2 && now_s() - t0 < 20) {
        int d = 0;
        drive(base, &d, 0.05);
    }
    watch_fd = -1;
    CHECK_INT(k.replies, 2);
    fprintf(stderr, "  16 MB command: %ld writes, %ld of them EAGAIN\n", watch_writes,
            watch_eagain);
    CHECK(watch_eagain <= 1);
    redisAsyncFree(ac);
    event_base_free(base);
    fake_stop(&f);
    free(v);
}

/* Commands of several requests in one loop pass go out in one write. */
static void commands_of_one_pass_in_one_write(void)
{
    if (!redis_port) return;
    struct event_base *base = event_base_new();
    struct counts k = {0};
    redisAsyncContext *ac = open_ctx(base, redis_port, &k);
    if (!ac) return;
    redisAsyncCommand(ac, count_reply, NULL, "PING");
    for (int i = 0; i < 200 && k.replies < 1; i++)
        event_base_loop(base, EVLOOP_ONCE);
    watch_fd = ac->c.fd;
    watch_writes = watch_eagain = 0;
    for (int i = 0; i < 10; i++)
        redisAsyncCommand(ac, count_reply, NULL, "PING");
    for (int i = 0; i < 200 && k.replies < 11; i++)
        event_base_loop(base, EVLOOP_ONCE);
    watch_fd = -1;
    CHECK_INT(k.replies, 11);
    CHECK_INT(watch_writes, 1);
    redisAsyncFree(ac);
    event_base_free(base);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (redis_start() < 0) fprintf(stderr, "no redis-server: the real-Redis tests are skipped\n");
    real_redis_chained_commands();
    real_redis_free_inside_callback_with_flush_active();
    real_redis_free_from_timer_with_flush_active();
    idle_after_reply_is_quiet();
    real_redis_server_side_close();
    partial_write_slow_reader();
    partial_writes_issued_from_callback();
    server_cuts_reply();
    server_error_greeting();
    connect_never_completes_then_freed();
    connect_refused_asynchronously();
    partial_write_waits_for_write_event();
    commands_of_one_pass_in_one_write();
    if (redis_port) redis_stop();
    return gw_test_done("test_redis_loop_review");
}
