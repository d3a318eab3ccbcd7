/*
 * policy redis: the counters live in Redis, shared by every sluice that
 * points at it. Each worker keeps one hiredis async connection per Redis
 * (address, user, password, database), attached to its own event loop, and
 * sends one EVAL per request: the script reads every period's counter and
 * counts the request only when none is at its limit, atomically, in one
 * round trip. The request stays suspended until the reply.
 *
 * Failures (refused, reset, an error reply, no reply within redis.timeout)
 * complete the check with an error; the plugin then applies
 * fault_tolerant. A timeout drops the connection: a Redis that stopped
 * answering is not trusted with the next request, which reconnects.
 *
 * Ownership: hiredis owns each pending `struct op` (malloc'd) until it calls
 * op_reply, on a reply or with NULL when the connection goes. The request
 * only points at it; a timeout detaches the request from the op first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "rate_limiting.h"

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

struct conn {
    struct conn *next;
    char *addr, *username, *password;
    long port, database;
    redisAsyncContext *ac; /* NULL: not connected; the next check connects */
    char why[128];         /* why the last connection went, for messages */
};

struct op {
    struct gw_request *r; /* NULL once detached (timeout, shutdown) */
    struct rl_check *c;
    rl_done_fn done;
    struct event timer;
    struct conn *conn;
    char where[80]; /* "127.0.0.1:6379", for messages */
};

static _Thread_local struct conn *conns;

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct conn *cn = ac->data;
    /* On failure hiredis frees the context right after this callback and
     * fails the commands queued on it. */
    if (status != REDIS_OK && cn) {
        snprintf(cn->why, sizeof(cn->why), "%s", ac->errstr[0] ? ac->errstr : "cannot connect");
        cn->ac = NULL;
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *cn = ac->data;
    if (cn && cn->ac == ac) {
        snprintf(cn->why, sizeof(cn->why), "%s",
                 status != REDIS_OK && ac->errstr[0] ? ac->errstr : "connection closed");
        cn->ac = NULL;
    }
}

/* AUTH and SELECT: if either fails, the commands behind it must not run
 * (they would count in the wrong database): drop the connection. */
static void on_setup_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redisReply *reply = reply_;
    const char *what = privdata;
    if (!reply) return;
    if (reply->type == REDIS_REPLY_ERROR) {
        gw_error("rate-limiting: redis %s failed: %s", what, reply->str);
        struct conn *cn = ac->data;
        if (cn && cn->ac == ac) {
            snprintf(cn->why, sizeof(cn->why), "%s failed: %s", what, reply->str);
            cn->ac = NULL;
        }
        redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
    }
}

static void drop(struct conn *cn, const char *why)
{
    snprintf(cn->why, sizeof(cn->why), "%s", why);
    redisAsyncContext *ac = cn->ac;
    cn->ac = NULL;
    if (ac) redisAsyncFree(ac); /* pending ops complete with NULL replies */
}

static struct conn *connection(struct event_base *base, const struct rl_redis_conf *rc,
                               const char **err)
{
    struct conn *cn = conns;
    while (cn && !(cn->port == rc->port && cn->database == rc->database &&
                   strcmp(cn->addr, rc->addr) == 0 && same(cn->username, rc->username) &&
                   same(cn->password, rc->password)))
        cn = cn->next;
    if (!cn) {
        cn = calloc(1, sizeof(*cn));
        if (!cn) goto oom;
        cn->addr = strdup(rc->addr);
        cn->username = rc->username ? strdup(rc->username) : NULL;
        cn->password = rc->password ? strdup(rc->password) : NULL;
        cn->port = rc->port;
        cn->database = rc->database;
        cn->next = conns;
        conns = cn;
        if (!cn->addr || (rc->username && !cn->username) || (rc->password && !cn->password))
            goto oom;
    }
    if (cn->ac) return cn;

    /* Non-blocking connect to an address resolved at load: nothing here
     * waits. Commands queue until the connection is up. */
    redisAsyncContext *ac = redisAsyncConnect(cn->addr, (int)cn->port);
    if (!ac) goto oom;
    if (ac->err) {
        snprintf(cn->why, sizeof(cn->why), "%s", ac->errstr);
        *err = cn->why;
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = cn;
    if (redisLibeventAttach(ac, base) != REDIS_OK) {
        redisAsyncFree(ac);
        goto oom;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    cn->ac = ac;
    if (cn->password) {
        if (cn->username)
            redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s %s", cn->username, cn->password);
        else
            redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", cn->password);
    }
    if (cn->database) redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %ld", cn->database);
    return cn;
oom:
    *err = "out of memory";
    return NULL;
}

static void op_finish(struct op *op, const char *err)
{
    struct gw_request *r = op->r;
    op->r = NULL;
    evtimer_del(&op->timer);
    if (r) op->done(r, op->c, err);
}

static void op_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    (void)ac;
    redisReply *reply = reply_;
    struct op *op = privdata;
    struct gw_request *r = op->r;
    const char *err = NULL;
    if (!r) goto out; /* timed out or shut down: already answered */
    struct rl_check *c = op->c;
    if (!reply) {
        err = gw_sprintf(r->arena, "redis %s: %s", op->where,
                         op->conn->why[0] ? op->conn->why : "connection lost");
    } else if (reply->type == REDIS_REPLY_ERROR) {
        err = gw_sprintf(r->arena, "redis %s: %s", op->where, reply->str);
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t)c->n + 1) {
        err = gw_sprintf(r->arena, "redis %s: unexpected reply to the rate-limiting script",
                         op->where);
    } else {
        for (size_t i = 0; i < reply->elements; i++)
            if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
                err = gw_sprintf(r->arena, "redis %s: unexpected reply to the rate-limiting script",
                                 op->where);
                break;
            }
        if (!err) {
            c->stop = (int)reply->element[0]->integer;
            for (int i = 0; i < c->n; i++)
                c->usage[i] = (long)reply->element[i + 1]->integer;
            if (c->stop < 0 || c->stop > c->n)
                err = gw_sprintf(r->arena, "redis %s: unexpected reply to the rate-limiting script",
                                 op->where);
        }
    }
    op_finish(op, err);
out:
    /* The timer is never pending here: op_finish or op_timeout deleted it. */
    free(op);
}

static void op_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct op *op = arg;
    struct gw_request *r = op->r;
    struct rl_check *c = op->c;
    rl_done_fn done = op->done;
    const char *err = gw_sprintf(r->arena, "redis %s: no reply within the timeout", op->where);
    /* Detach first: dropping the connection calls op_reply, which frees op. */
    op->r = NULL;
    drop(op->conn, "an earlier command timed out");
    done(r, c, err);
}

int rl_redis_check(struct gw_request *r, const struct rl_redis_conf *rc, struct rl_check *c,
                   rl_done_fn done, const char **err)
{
    struct event_base *base = gw_request_event_base(r);
    struct conn *cn = connection(base, rc, err);
    if (!cn) {
        *err = gw_sprintf(r->arena, "redis %s:%ld: %s", rc->addr, rc->port, *err);
        return -1;
    }
    struct op *op = calloc(1, sizeof(*op));
    if (!op) {
        *err = "out of memory";
        return -1;
    }
    op->r = r;
    op->c = c;
    op->done = done;
    op->conn = cn;
    snprintf(op->where, sizeof(op->where), "%s:%ld", rc->addr, rc->port);

    /* EVAL script n key... limit... ttl... */
    const char *argv[3 + 3 * RL_NPERIODS];
    size_t argl[3 + 3 * RL_NPERIODS];
    char num[2 * RL_NPERIODS][32];
    int argc = 0;
    argv[argc] = "EVAL";
    argl[argc++] = 4;
    argv[argc] = check_script;
    argl[argc++] = sizeof(check_script) - 1;
    char nkeys[8];
    argl[argc] = (size_t)snprintf(nkeys, sizeof(nkeys), "%d", c->n);
    argv[argc++] = nkeys;
    for (int i = 0; i < c->n; i++) {
        argv[argc] = c->key[i];
        argl[argc++] = c->key_len[i];
    }
    for (int i = 0; i < c->n; i++) {
        argl[argc] = (size_t)snprintf(num[i], sizeof(num[i]), "%.17g", c->limit[i]);
        argv[argc++] = num[i];
    }
    for (int i = 0; i < c->n; i++) {
        argl[argc] = (size_t)snprintf(num[c->n + i], sizeof(num[0]), "%ld", c->ttl[i]);
        argv[argc++] = num[c->n + i];
    }
    if (redisAsyncCommandArgv(cn->ac, op_reply, op, argc, argv, argl) != REDIS_OK) {
        free(op);
        drop(cn, "cannot send");
        *err = gw_sprintf(r->arena, "redis %s:%ld: cannot send the command", rc->addr, rc->port);
        return -1;
    }
    evtimer_assign(&op->timer, base, op_timeout, op);
    struct timeval tv = {rc->timeout / 1000, (rc->timeout % 1000) * 1000};
    evtimer_add(&op->timer, &tv);
    return 0;
}

void rl_redis_worker_exit(void)
{
    while (conns) {
        struct conn *cn = conns;
        conns = cn->next;
        drop(cn, "the worker is stopping"); /* pending checks complete with an error */
        free(cn->addr);
        free(cn->username);
        free(cn->password);
        free(cn);
    }
}
