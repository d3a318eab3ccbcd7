/*
 * rate-limiting: what the plugin's files share.
 *
 *   rate_limiting.c  config schema, identifiers, periods, headers, the hooks
 *   local_counters.c policy local: counters in this process, all workers
 *   redis_counters.c policy redis: counters in Redis, one async connection
 *                    per worker and Redis server, one EVAL per request
 *
 * Both stores do the same thing: read the counters of every configured
 * period, and only if none is at its limit add 1 to each, atomically (a
 * mutex; a Lua script). A rejected request therefore does not count, as
 * in Kong, and concurrent requests cannot overshoot a limit.
 */
#ifndef RATE_LIMITING_H
#define RATE_LIMITING_H

#include <stdint.h>

#include "sluice.h"

enum rl_period { RL_SECOND, RL_MINUTE, RL_HOUR, RL_DAY, RL_MONTH, RL_YEAR, RL_NPERIODS };

struct rl_redis_conf {
    const char *host;
    long port;
    const char *username;
    const char *password;
    long database;
    long timeout; /* ms, for connecting and for each reply */
    int ssl;
    int ssl_verify;
    const char *server_name;
    /* Derived at load: host resolved to an address, so that connecting
     * never resolves a name on the event loop. */
    const char *addr;
};

struct rl_conf {
    double limit[RL_NPERIODS]; /* 0: no limit for that period */
    int limit_by;              /* enum rl_limit_by */
    const char *header_name;
    const char *path;
    int policy; /* enum rl_policy */
    int fault_tolerant;
    int hide_client_headers;
    long error_code;
    const char *error_message;
    double sync_rate;
    struct rl_redis_conf redis;
    /* Kong's flat redis_* fields (before 3.6), folded into `redis`. */
    struct rl_redis_conf legacy;
    /* Derived at load */
    int periods[RL_NPERIODS]; /* the configured periods, shortest first */
    int n_periods;
    const char *key_prefix;              /* "ratelimit:<route>:<service>:" of the plugin's scope */
    const char *limit_text[RL_NPERIODS]; /* limits as text, for Redis */
};

/* One check: the counter keys of the configured periods, their limits. */
struct rl_check {
    int n;
    const char *key[RL_NPERIODS];
    size_t key_len[RL_NPERIODS];
    double limit[RL_NPERIODS];
    long ttl[RL_NPERIODS];               /* seconds: the key dies with its period */
    const char *limit_text[RL_NPERIODS]; /* the same, as the EVAL sends it */
    int64_t expires[RL_NPERIODS];        /* unix seconds: when the period ends */
    /* Result: the counts before this request; stop = index + 1 of the
     * first period at its limit (nothing was counted), or 0. */
    long usage[RL_NPERIODS];
    int stop;
};

/* policy local: fills usage/stop. Never fails. */
void rl_local_check(struct rl_check *c, int64_t now);

/* policy redis: sends the check and returns; done(r, c, err) runs later
 * on the same worker loop with err NULL or a message (arena). The
 * request stays suspended in between. Returns -1 with *err set when
 * nothing could be sent (done is then not called). */
typedef void (*rl_done_fn)(struct gw_request *r, struct rl_check *c, const char *err);
int rl_redis_check(struct gw_request *r, const struct rl_redis_conf *rc, struct rl_check *c,
                   rl_done_fn done, const char **err);
/* Frees this worker's connections; pending checks complete with an error. */
void rl_redis_worker_exit(void);

#endif
