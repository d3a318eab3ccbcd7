/*
 * policy redis: the counters live in Redis, shared by every sluice that
 * points at it. Each worker keeps one hiredis async connection per Redis
 * (address, user, password, database, timeout), attached to its own event
 * loop, and sends one EVAL per request: the script reads every period's
 * counter and counts the request only when none is at its limit,
 * atomically, in one round trip. The request stays suspended until the
 * reply.
 *
 * A new connection first sends AUTH and/or SELECT; checks wait in the
 * connection's queue until both have answered OK, since Redis would run a
 * pipelined EVAL even after a failed SELECT (counting in database 0) or a
 * failed AUTH. If either fails, the queued checks fail with its error.
 *
 * Failures (refused, reset, an error reply, no reply within redis.timeout)
 * complete the check with an error; the plugin then applies
 * fault_tolerant. A timeout drops the connection: a Redis that did not
 * answer one command in time is not trusted with the ones behind it. The
 * timeout is part of what identifies a connection, so a plugin with a short
 * timeout never cuts short the checks of one that allows longer.
 *
 * Ownership of a check's `struct op` (malloc'd): while queued, the
 * connection's; once sent, hiredis's until it calls op_reply (with a reply,
 * or NULL when the connection goes). The request only points at it, and a
 * timeout detaches the request from it first.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "rate_limiting.h"
#include "redis_loop.h"

/* KEYS: one counter per period. ARGV: the n limits, then the n TTLs.
 * Returns {stop, usage...}: stop is the 1-based period at its limit, or 0
 * when the request was counted. */
static const char check_script[] =
    "local n = #KEYS\n"
    "local out = {0}\n"
    "for i = 1, n do\n"
    "  local v = tonumber(redis.call('GET', KEYS[i]) or '0')\n"
    "  out[i + 1] = v\n"
    "  if out[1] == 0 and tonumber(ARGV[i]) - v <= 0 then out[1] = i end\n"
    "end\n"
    "if out[1] == 0 then\n"
    "  for i = 1, n do\n"
    "    if redis.call('INCRBY', KEYS[i], 1) == 1 then\n"
    "      redis.call('EXPIRE', KEYS[i], ARGV[n + i])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* A connection nobody used for this long is closed (reloads that change
 * the Redis settings would otherwise leave the old ones open). */
#define IDLE_CLOSE_US (60u * 1000000u)

struct op;

struct conn {
    struct conn *next;
    char *addr, *username, *password;
    long port, database, timeout;
    redisAsyncContext *ac;          /* NULL: not connected; the next check connects */
    int setup_left;                 /* AUTH/SELECT replies still awaited */
    struct op *queue, **queue_tail; /* checks waiting for the setup */
    long in_flight;                 /* checks sent, not yet answered */
    uint64_t last_used_us;
    char why[128]; /* why the last connection went, for messages */
};

struct op {
    struct op *next; /* in the connection's queue */
    int queued;
    struct gw_request *r; /* NULL once detached (timeout, shutdown) */
    struct rl_check *c;
    rl_done_fn done;
    struct event timer;
    struct conn *conn;
    char *cmd; /* the formatted EVAL, while queued */
    size_t cmd_len;
};

static _Thread_local struct conn *conns;
/* Runs close_idle while the worker has connections, traffic or not. */
static _Thread_local struct event *idle_timer;
#define IDLE_CHECK_S 30

/* hiredis 0.14 allocates an announced array whole before its elements come:
 * "*2147483647" from a broken or hostile server is 16 GB asked for, and
 * freeing it walks every slot, blocking the worker for seconds. The script
 * answers at most RL_NPERIODS + 1 elements (AUTH and SELECT none): a bigger
 * announcement is refused, which hiredis reports as out of memory
 * (ctx_error says which), and the connection goes. Bulk strings are not
 * allocated ahead (a "$1000000000" header costs nothing until its bytes
 * come, and redis.timeout bounds the wait). Should the reader table not be
 * made (no memory at the first connection), replies are read unbounded. */
static redisReplyObjectFunctions bounded_fn;
static void *(*default_create_array)(const redisReadTask *, int);
static pthread_once_t bounded_once = PTHREAD_ONCE_INIT;

static void *create_array_bounded(const redisReadTask *task, int elements)
{
    if (elements > RL_NPERIODS + 1) return NULL;
    return default_create_array(task, elements);
}

static void bounded_init(void)
{
    redisReader *r = redisReaderCreate();
    if (!r) return;
    bounded_fn = *r->fn;
    default_create_array = r->fn->createArray;
    bounded_fn.createArray = create_array_bounded;
    redisReaderFree(r);
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void set_why(struct conn *cn, const char *why)
{
    snprintf(cn->why, sizeof(cn->why), "%s", why);
}

/* Completes a check with err (NULL: c is filled) unless it was detached. */
static void op_finish(struct op *op, const char *err)
{
    struct gw_request *r = op->r;
    op->r = NULL;
    evtimer_del(&op->timer);
    if (r)
        op->done(r, op->c,
                 err ? gw_sprintf(r->arena, "redis %s:%ld: %s", op->conn->addr, op->conn->port, err)
                     : NULL);
}

static struct op *queue_pop(struct conn *cn)
{
    struct op *op = cn->queue;
    cn->queue = op->next;
    if (!cn->queue) cn->queue_tail = &cn->queue;
    op->queued = 0;
    return op;
}

/* The queued checks fail with `why`; they never reached Redis. */
static void fail_queue(struct conn *cn, const char *why)
{
    while (cn->queue) {
        struct op *op = queue_pop(cn);
        op_finish(op, why);
        free(op->cmd);
        free(op);
    }
}

/* Closes the connection: hiredis fails what was sent (op_reply with NULL). */
static void drop(struct conn *cn, const char *why)
{
    set_why(cn, why);
    redisAsyncContext *ac = cn->ac;
    cn->ac = NULL;
    cn->setup_left = 0;
    if (ac) redisAsyncFree(ac); /* deferred by hiredis when inside its callback */
    fail_queue(cn, why);
}

static void op_reply(redisAsyncContext *ac, void *reply_, void *privdata);

/* Hands the formatted EVAL to hiredis (which copies it). */
static int send_op(struct conn *cn, struct op *op)
{
    int rc = redisAsyncFormattedCommand(cn->ac, op_reply, op, op->cmd, op->cmd_len);
    free(op->cmd);
    op->cmd = NULL;
    if (rc != REDIS_OK) return -1;
    cn->in_flight++;
    return 0;
}

/* hiredis says "Out of memory" for the reader error create_array_bounded
 * causes (and for a real lack of memory): say which is likely. */
static const char *ctx_error(const redisAsyncContext *ac)
{
    if (ac->err == REDIS_ERR_OOM)
        return "reply larger than the rate-limiting script returns (or out of memory)";
    return ac->errstr;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct conn *cn = ac->data;
    /* On failure hiredis frees the context right after this callback and
     * fails the commands sent on it. */
    if (status != REDIS_OK && cn && cn->ac == ac) {
        set_why(cn, ac->errstr[0] ? ac->errstr : "cannot connect");
        cn->ac = NULL;
        cn->setup_left = 0;
        fail_queue(cn, cn->why);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *cn = ac->data;
    if (cn && cn->ac == ac) {
        set_why(cn, status != REDIS_OK && ac->errstr[0] ? ctx_error(ac) : "connection closed");
        cn->ac = NULL;
        cn->setup_left = 0;
        fail_queue(cn, cn->why);
    }
}

/* AUTH and SELECT: the queued checks go once both answered OK. */
static void on_setup_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redisReply *reply = reply_;
    const char *what = privdata;
    struct conn *cn = ac->data;
    if (!cn || cn->ac != ac) return; /* dropped already */
    if (!reply) return;              /* going: on_disconnect fails the queue */
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[128];
        snprintf(why, sizeof(why), "%s failed: %s", what, reply->str);
        /* Logged by each request it fails, at most once a second
         * (report_failure): a line here would be one per request, as every
         * check tries a new connection. */
        drop(cn, why);
        return;
    }
    if (--cn->setup_left > 0) return;
    while (cn->queue && cn->ac) {
        struct op *op = queue_pop(cn);
        if (send_op(cn, op) < 0) {
            op_finish(op, "cannot send the command");
            free(op);
        }
    }
}

static void conn_free(struct conn *cn)
{
    drop(cn, "the worker is stopping");
    free(cn->addr);
    free(cn->username);
    free(cn->password);
    free(cn);
}

/* Closes the connections that served nobody for a while. */
static void close_idle(uint64_t now)
{
    for (struct conn **pp = &conns; *pp;) {
        struct conn *cn = *pp;
        if (!cn->in_flight && !cn->queue && now - cn->last_used_us > IDLE_CLOSE_US) {
            *pp = cn->next;
            conn_free(cn);
        } else {
            pp = &cn->next;
        }
    }
}

static void idle_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    close_idle(gw_now_us());
    struct timeval tv = {IDLE_CHECK_S, 0};
    if (conns) evtimer_add(idle_timer, &tv);
}

static struct conn *find_or_add(const struct rl_redis_conf *rc, uint64_t now,
                                struct event_base *base)
{
    for (struct conn *cn = conns; cn; cn = cn->next)
        if (cn->port == rc->port && cn->database == rc->database && cn->timeout == rc->timeout &&
            strcmp(cn->addr, rc->addr) == 0 && same(cn->username, rc->username) &&
            same(cn->password, rc->password))
            return cn;
    close_idle(now);
    struct conn *cn = calloc(1, sizeof(*cn));
    if (!cn) return NULL;
    cn->addr = strdup(rc->addr);
    cn->username = rc->username ? strdup(rc->username) : NULL;
    cn->password = rc->password ? strdup(rc->password) : NULL;
    if (!cn->addr || (rc->username && !cn->username) || (rc->password && !cn->password)) {
        free(cn->addr);
        free(cn->username);
        free(cn->password);
        free(cn);
        return NULL;
    }
    cn->port = rc->port;
    cn->database = rc->database;
    cn->timeout = rc->timeout;
    cn->queue_tail = &cn->queue;
    cn->next = conns;
    conns = cn;
    if (!idle_timer) idle_timer = evtimer_new(base, idle_check, NULL);
    if (idle_timer && !evtimer_pending(idle_timer, NULL)) {
        struct timeval tv = {IDLE_CHECK_S, 0};
        evtimer_add(idle_timer, &tv);
    }
    return cn;
}

/* Non-blocking connect to an address resolved at load: nothing here
 * waits. Returns -1 with cn->why set. */
static int connect_conn(struct conn *cn, struct event_base *base)
{
    redisAsyncContext *ac = redisAsyncConnect(cn->addr, (int)cn->port);
    if (!ac) {
        set_why(cn, "out of memory");
        return -1;
    }
    if (ac->err) {
        set_why(cn, ac->errstr);
        redisAsyncFree(ac);
        return -1;
    }
    ac->data = cn;
    pthread_once(&bounded_once, bounded_init);
    if (default_create_array) ac->c.reader->fn = &bounded_fn;
    if (rl_redis_attach(ac, base) < 0) {
        set_why(cn, "out of memory");
        redisAsyncFree(ac);
        return -1;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    cn->ac = ac;
    cn->why[0] = '\0';
    cn->setup_left = 0;
    if (cn->password) {
        cn->setup_left++;
        if (cn->username)
            redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s %s", cn->username, cn->password);
        else
            redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", cn->password);
    }
    if (cn->database) {
        cn->setup_left++;
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %ld", cn->database);
    }
    return 0;
}

static const char *unexpected = "unexpected reply to the rate-limiting script";

static void op_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redisReply *reply = reply_;
    struct op *op = privdata;
    op->conn->in_flight--;
    const char *err = NULL;
    struct rl_check *c = op->c;
    if (!op->r) {
        /* timed out or shut down: already answered */
    } else if (!reply) {
        /* hiredis fails the callbacks before it says why the connection
         * went: its own error first, then ours (a drop). */
        err = ac->err && ac->errstr[0] ? ctx_error(ac)
              : op->conn->why[0]       ? op->conn->why
                                       : "connection lost";
    } else if (reply->type == REDIS_REPLY_ERROR) {
        err = reply->str;
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t)c->n + 1) {
        err = unexpected;
    } else {
        for (size_t i = 0; i < reply->elements && !err; i++)
            if (reply->element[i]->type != REDIS_REPLY_INTEGER) err = unexpected;
        if (!err && (reply->element[0]->integer < 0 || reply->element[0]->integer > c->n))
            err = unexpected;
        if (!err) {
            c->stop = (int)reply->element[0]->integer;
            for (int i = 0; i < c->n; i++)
                c->usage[i] = (long)reply->element[i + 1]->integer;
        }
    }
    op_finish(op, err);
    free(op);
}

static void op_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct op *op = arg;
    struct conn *cn = op->conn;
    if (op->queued) {
        /* Still waiting for AUTH/SELECT: take it out, then the connection
         * goes too (its setup did not answer in time either). */
        struct op **pp = &cn->queue;
        while (*pp != op)
            pp = &(*pp)->next;
        *pp = op->next;
        if (!*pp) cn->queue_tail = pp;
        op_finish(op, "no reply within the timeout");
        free(op->cmd);
        free(op);
        drop(cn, "the connection setup timed out");
        return;
    }
    /* Sent: answer the request now; the late reply, if any, finds the op
     * detached (op_reply frees it). */
    op_finish(op, "no reply within the timeout");
    drop(cn, "an earlier command timed out");
}

int rl_redis_check(struct gw_request *r, const struct rl_redis_conf *rc, struct rl_check *c,
                   rl_done_fn done, const char **err)
{
    struct event_base *base = gw_request_event_base(r);
    uint64_t now = gw_now_us();
    struct conn *cn = find_or_add(rc, now, base);
    if (!cn) {
        *err = gw_sprintf(r->arena, "redis %s:%ld: out of memory", rc->addr, rc->port);
        return -1;
    }
    cn->last_used_us = now;
    if (!cn->ac && connect_conn(cn, base) < 0) {
        *err = gw_sprintf(r->arena, "redis %s:%ld: %s", rc->addr, rc->port, cn->why);
        return -1;
    }

    /* EVAL script n key... limit... ttl... (no printf: this is per request) */
    const char *argv[3 + 3 * RL_NPERIODS];
    size_t argl[3 + 3 * RL_NPERIODS];
    char ttl[RL_NPERIODS][24];
    char nkeys[2] = {(char)('0' + c->n), '\0'}; /* 1 to RL_NPERIODS */
    int argc = 0;
    argv[argc] = "EVAL";
    argl[argc++] = 4;
    argv[argc] = check_script;
    argl[argc++] = sizeof(check_script) - 1;
    argv[argc] = nkeys;
    argl[argc++] = 1;
    for (int i = 0; i < c->n; i++) {
        argv[argc] = c->key[i];
        argl[argc++] = c->key_len[i];
    }
    for (int i = 0; i < c->n; i++) {
        argv[argc] = c->limit_text[i];
        argl[argc++] = strlen(c->limit_text[i]);
    }
    for (int i = 0; i < c->n; i++) {
        argv[argc] = gw_u64_text(ttl[i], (uint64_t)c->ttl[i]);
        argl[argc] = strlen(argv[argc]);
        argc++;
    }
    struct op *op = calloc(1, sizeof(*op));
    int len = op ? redisFormatCommandArgv(&op->cmd, argc, argv, argl) : -1;
    if (len < 0) {
        free(op);
        *err = gw_sprintf(r->arena, "redis %s:%ld: out of memory", rc->addr, rc->port);
        return -1;
    }
    op->cmd_len = (size_t)len;
    op->r = r;
    op->c = c;
    op->done = done;
    op->conn = cn;
    evtimer_assign(&op->timer, base, op_timeout, op);
    struct timeval tv = {rc->timeout / 1000, (rc->timeout % 1000) * 1000};
    evtimer_add(&op->timer, &tv);
    if (cn->setup_left > 0) {
        op->queued = 1;
        *cn->queue_tail = op;
        cn->queue_tail = &op->next;
        return 0;
    }
    if (send_op(cn, op) < 0) {
        /* Not suspended yet: fail here, without resuming. */
        evtimer_del(&op->timer);
        free(op);
        drop(cn, "cannot send the command");
        *err = gw_sprintf(r->arena, "redis %s:%ld: cannot send the command", rc->addr, rc->port);
        return -1;
    }
    return 0;
}

void rl_redis_worker_exit(void)
{
    while (conns) {
        struct conn *cn = conns;
        conns = cn->next;
        conn_free(cn); /* pending checks complete with an error */
    }
    if (idle_timer) event_free(idle_timer);
    idle_timer = NULL;
}
