/*
 * rate-limiting (Kong priority 910): at most N requests per second, minute,
 * hour, day, month and/or year, per consumer, credential, IP, service,
 * header value or path, counted in this process (policy local) or in Redis
 * (policy redis, shared by every gateway node). Kong's config fields,
 * counter keys, response headers and 429 answer.
 *
 * Periods are UTC calendar periods, as in Kong: the minute starting at :00,
 * the month starting on the 1st. The counter key of a period names the
 * plugin's scope, the identifier and the period's start, so it changes by
 * itself when the period does and needs no reset.
 */
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "gw_num_text.h"
#include "rate_limiting.h"

enum rl_limit_by { BY_CONSUMER, BY_CREDENTIAL, BY_IP, BY_SERVICE, BY_HEADER, BY_PATH, BY_GROUP };
enum rl_policy { POLICY_LOCAL, POLICY_CLUSTER, POLICY_REDIS };

static const char *const limit_by_names[] = {
    "consumer", "credential", "ip", "service", "header", "path", "consumer-group", NULL};
static const char *const policy_names[] = {"local", "cluster", "redis", NULL};

static const char *const period_names[RL_NPERIODS] = {"second", "minute", "hour",
                                                      "day",    "month",  "year"};
/* Kong's per-period headers, and its period lengths (a "month" is 30 days
 * there: only the tie-break between periods uses these for month and year). */
static const char *const limit_headers[RL_NPERIODS] = {
    "X-RateLimit-Limit-Second", "X-RateLimit-Limit-Minute", "X-RateLimit-Limit-Hour",
    "X-RateLimit-Limit-Day",    "X-RateLimit-Limit-Month",  "X-RateLimit-Limit-Year"};
static const char *const remaining_headers[RL_NPERIODS] = {
    "X-RateLimit-Remaining-Second", "X-RateLimit-Remaining-Minute", "X-RateLimit-Remaining-Hour",
    "X-RateLimit-Remaining-Day",    "X-RateLimit-Remaining-Month",  "X-RateLimit-Remaining-Year"};
static const long period_seconds[RL_NPERIODS] = {1, 60, 3600, 86400, 2592000, 31536000};

/* Kong's EMPTY_UUID: the scope part of a key when the plugin has none. */
#define NO_SCOPE "00000000-0000-0000-0000-000000000000"

/* --- config ------------------------------------------------------------- */

static const struct gw_field redis_fields[] = {
    {GW_FIELD(struct rl_redis_conf, host, GW_F_STRING, 0, NULL), .min = 1, .max = 255},
    {GW_FIELD(struct rl_redis_conf, port, GW_F_INT, 0, "6379"), .min = 1, .max = 65535},
    {GW_FIELD(struct rl_redis_conf, username, GW_F_STRING, 0, NULL), .min = 1, .max = 256},
    {GW_FIELD(struct rl_redis_conf, password, GW_F_STRING, GW_SECRET, NULL), .max = 1024},
    {GW_FIELD(struct rl_redis_conf, database, GW_F_INT, 0, "0"), .min = 0, .max = 1000000},
    {GW_FIELD(struct rl_redis_conf, timeout, GW_F_INT, 0, "2000"), .min = 1, .max = 3600000},
    {GW_FIELD(struct rl_redis_conf, ssl, GW_F_BOOL, 0, "false")},
    {GW_FIELD(struct rl_redis_conf, ssl_verify, GW_F_BOOL, 0, "false")},
    {GW_FIELD(struct rl_redis_conf, server_name, GW_F_STRING, 0, NULL), .min = 1, .max = 255},
    {0},
};
static const struct gw_schema redis_schema = {
    .name = "redis",
    .size = sizeof(struct rl_redis_conf),
    .fields = redis_fields,
};

#define LIMIT_FIELD(p)                                                                             \
    {                                                                                              \
        .name = #p, .type = GW_F_NUMBER,                                                           \
        .offset = offsetof(struct rl_conf, limit) + RL_##p * sizeof(double)                        \
    }
#define LEGACY_FIELD(name_, member, ftype, flags_)                                                 \
    {                                                                                              \
        .name = name_, .type = (ftype), .flags = (flags_),                                         \
        .offset = offsetof(struct rl_conf, legacy) + offsetof(struct rl_redis_conf, member)        \
    }

/* RL_second... for LIMIT_FIELD's token pasting. */
enum { RL_second = RL_SECOND, RL_minute, RL_hour, RL_day, RL_month, RL_year };

static const struct gw_field rl_fields[] = {
    LIMIT_FIELD(second),
    LIMIT_FIELD(minute),
    LIMIT_FIELD(hour),
    LIMIT_FIELD(day),
    LIMIT_FIELD(month),
    LIMIT_FIELD(year),
    {GW_FIELD(struct rl_conf, limit_by, GW_F_ENUM, 0, "consumer"), .choices = limit_by_names},
    {GW_FIELD(struct rl_conf, header_name, GW_F_STRING, 0, NULL), .min = 1, .max = 256},
    {GW_FIELD(struct rl_conf, path, GW_F_STRING, 0, NULL), .min = 1, .max = 4096},
    {GW_FIELD(struct rl_conf, policy, GW_F_ENUM, 0, "local"), .choices = policy_names},
    {GW_FIELD(struct rl_conf, fault_tolerant, GW_F_BOOL, 0, "true")},
    {GW_FIELD(struct rl_conf, hide_client_headers, GW_F_BOOL, 0, "false")},
    {GW_FIELD(struct rl_conf, error_code, GW_F_INT, 0, "429"), .min = 200, .max = 599},
    {GW_FIELD(struct rl_conf, error_message, GW_F_STRING, 0, "API rate limit exceeded"), .min = 1,
     .max = 4096},
    {GW_FIELD(struct rl_conf, sync_rate, GW_F_NUMBER, 0, "-1")},
    {GW_FIELD(struct rl_conf, redis, GW_F_RECORD, 0, "{}"), .record = &redis_schema},
    LEGACY_FIELD("redis_host", host, GW_F_STRING, 0),
    LEGACY_FIELD("redis_port", port, GW_F_INT, 0),
    LEGACY_FIELD("redis_username", username, GW_F_STRING, 0),
    LEGACY_FIELD("redis_password", password, GW_F_STRING, GW_SECRET),
    LEGACY_FIELD("redis_database", database, GW_F_INT, 0),
    LEGACY_FIELD("redis_timeout", timeout, GW_F_INT, 0),
    LEGACY_FIELD("redis_ssl", ssl, GW_F_BOOL, 0),
    LEGACY_FIELD("redis_ssl_verify", ssl_verify, GW_F_BOOL, 0),
    LEGACY_FIELD("redis_server_name", server_name, GW_F_STRING, 0),
    {0},
};

/* Kong's flat redis_* fields and the `redis` record they became. */
static const struct legacy_field {
    const char *flat, *member;
    enum gw_field_type type;
    size_t offset;
} legacy_fields[] = {
#define LEGACY(m, t)                                                                               \
    {                                                                                              \
        "redis_" #m, #m, t, offsetof(struct rl_redis_conf, m)                                      \
    }
    LEGACY(host, GW_F_STRING),     LEGACY(port, GW_F_INT),        LEGACY(username, GW_F_STRING),
    LEGACY(password, GW_F_STRING), LEGACY(database, GW_F_INT),    LEGACY(timeout, GW_F_INT),
    LEGACY(ssl, GW_F_BOOL),        LEGACY(ssl_verify, GW_F_BOOL), LEGACY(server_name, GW_F_STRING),
#undef LEGACY
};

static int legacy_same(const struct legacy_field *f, const void *a, const void *b)
{
    switch (f->type) {
    case GW_F_STRING: {
        const char *x = *(const char *const *)a, *y = *(const char *const *)b;
        return (!x && !y) || (x && y && strcmp(x, y) == 0);
    }
    case GW_F_INT:
        return *(const long *)a == *(const long *)b;
    default:
        return *(const int *)a == *(const int *)b;
    }
}

/* Folds the flat redis_* fields into `redis`, as Kong's shorthands do: a
 * null one is skipped, one the record also gives must agree with it
 * (Kong: "both deprecated and new field are used but their values
 * mismatch"). Ranges are checked here since the flat fields have none. */
static int fold_legacy(struct gw_conf *cf, const struct gw_node *n, struct rl_conf *conf)
{
    const struct gw_node *rn = gw_node_get(n, "redis");
    int rc = 0;
    for (size_t i = 0; i < sizeof(legacy_fields) / sizeof(legacy_fields[0]); i++) {
        const struct legacy_field *f = &legacy_fields[i];
        const struct gw_node *v = gw_node_get(n, f->flat);
        if (!v || v->type == GW_NODE_NULL) continue;
        const void *from = (const char *)&conf->legacy + f->offset;
        void *to = (char *)&conf->redis + f->offset;
        const struct gw_node *rv =
            rn && rn->type == GW_NODE_MAP ? gw_node_get(rn, f->member) : NULL;
        if (rv && rv->type != GW_NODE_NULL && !legacy_same(f, from, to)) {
            gw_conf_error(cf, v, f->flat, "and redis.%s are both given and differ", f->member);
            rc = -1;
            continue;
        }
        memcpy(to, from,
               f->type == GW_F_STRING ? sizeof(char *)
               : f->type == GW_F_INT  ? sizeof(long)
                                      : sizeof(int));
    }
    const struct rl_redis_conf *r = &conf->redis;
    const struct gw_node *v;
    if ((v = gw_node_get(n, "redis_port")) && v->type != GW_NODE_NULL &&
        (r->port < 1 || r->port > 65535)) {
        gw_conf_error(cf, v, "redis_port", "must be between 1 and 65535");
        rc = -1;
    }
    if ((v = gw_node_get(n, "redis_database")) && v->type != GW_NODE_NULL && r->database < 0) {
        gw_conf_error(cf, v, "redis_database", "must be 0 or more");
        rc = -1;
    }
    if ((v = gw_node_get(n, "redis_timeout")) && v->type != GW_NODE_NULL && r->timeout < 1) {
        gw_conf_error(cf, v, "redis_timeout", "must be 1 or more (milliseconds)");
        rc = -1;
    }
    /* Kong sends AUTH only for a password that is present: "" (an unset
     * ${REDIS_PASSWORD}, say) means none, never AUTH "". */
    if (conf->redis.password && !*conf->redis.password) conf->redis.password = NULL;
    if (conf->redis.username && !*conf->redis.username) conf->redis.username = NULL;
    return rc;
}

/* Connecting must never resolve a name on the event loop: resolve once
 * here (load and reload run off the request path). */
static int resolve_redis(struct gw_conf *cf, const struct gw_node *at, const char *sub,
                         struct rl_redis_conf *r)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int e = getaddrinfo(r->host, NULL, &hints, &res);
    if (e != 0 || !res) {
        gw_conf_error(cf, at, sub, "cannot resolve '%s': %s", r->host, gai_strerror(e));
        return -1;
    }
    char buf[NI_MAXHOST];
    e = getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof(buf), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (e != 0) {
        gw_conf_error(cf, at, sub, "cannot resolve '%s': %s", r->host, gai_strerror(e));
        return -1;
    }
    r->addr = gw_strdup(gw_conf_arena(cf), buf);
    return 0;
}

static const char *scope_name(struct gw_conf *cf, const char *name, const char *kind, size_t index)
{
    if (name) return name;
    return gw_sprintf(gw_conf_arena(cf), "%s#%zu", kind, index);
}

/* Kong's header_name rule for this plugin: ^[a-zA-Z0-9-_]+$. */
static int header_name_ok(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_') return 0;
    return 1;
}

/* Kong's typedefs.path: starts with '/', no empty segment, RFC 3986
 * characters only, every '%' an escape. NULL when it is one. */
static const char *kong_path_error(const char *p)
{
    if (*p != '/') return "must start with '/'";
    if (strstr(p, "//")) return "must not have empty segments";
    for (const char *c = p; *c; c++) {
        if (*c == '%') {
            if (gw_hex_digit(c[1]) < 0 || gw_hex_digit(c[2]) < 0)
                return "invalid url-encoded value (a '%' not followed by two hex digits)";
            c += 2;
        } else if (!isalnum((unsigned char)*c) && !strchr("-._~/:@!$&'()*+,;=", *c)) {
            return "characters outside of the reserved list of RFC 3986 found";
        }
    }
    return NULL;
}

static int rl_validate(struct gw_conf *cf, const struct gw_node *n, void *obj)
{
    struct rl_conf *conf = obj;
    int rc = 0;
    const struct gw_node *v;

    conf->n_periods = 0;
    for (int p = 0; p < RL_NPERIODS; p++) {
        if (!(v = gw_node_get(n, period_names[p])) || v->type == GW_NODE_NULL) continue;
        if (!(conf->limit[p] > 0)) {
            gw_conf_error(cf, v, period_names[p], "must be greater than 0");
            rc = -1;
            continue;
        }
        conf->periods[conf->n_periods++] = p;
        conf->limit_text[p] = gw_sprintf(gw_conf_arena(cf), "%.17g", conf->limit[p]);
    }
    if (!conf->n_periods && rc == 0) {
        gw_conf_error(cf, n, NULL,
                      "at least one of second, minute, hour, day, month, year is required");
        rc = -1;
    }
    /* Kong's check: a longer period may not allow fewer requests. */
    for (int i = 0; i + 1 < conf->n_periods; i++) {
        int a = conf->periods[i], b = conf->periods[i + 1];
        if (conf->limit[b] < conf->limit[a]) {
            gw_conf_error(cf, gw_node_get(n, period_names[b]), period_names[b],
                          "the limit for %s (%g) cannot be lower than the limit for %s (%g)",
                          period_names[b], conf->limit[b], period_names[a], conf->limit[a]);
            rc = -1;
        }
    }
    if (conf->header_name && !header_name_ok(conf->header_name)) {
        gw_conf_error(cf, gw_node_get(n, "header_name"), "header_name",
                      "must be a header name: letters, digits, '-' and '_'");
        rc = -1;
    }
    const char *why;
    if (conf->path && (why = kong_path_error(conf->path))) {
        gw_conf_error(cf, gw_node_get(n, "path"), "path", "%s", why);
        rc = -1;
    }
    if (conf->limit_by == BY_HEADER && !conf->header_name) {
        gw_conf_error(cf, n, "header_name", "required when limit_by is header");
        rc = -1;
    }
    if (conf->limit_by == BY_PATH && !conf->path) {
        gw_conf_error(cf, n, "path", "required when limit_by is path");
        rc = -1;
    }
    if (conf->sync_rate != -1) {
        gw_conf_error(cf, gw_node_get(n, "sync_rate"), "sync_rate",
                      "only -1 is supported: counters are updated synchronously");
        rc = -1;
    }
    if (fold_legacy(cf, n, conf) < 0) rc = -1;
    if (conf->policy == POLICY_CLUSTER) {
        gw_conf_error(cf, gw_node_get(n, "policy"), "policy",
                      "cluster keeps counters in Kong's database, and sluice has none: use "
                      "local or redis");
        rc = -1;
    }
    if (conf->policy == POLICY_REDIS) {
        const struct gw_node *rn = gw_node_get(n, "redis");
        const struct gw_node *ssl = gw_node_get(n, "redis_ssl");
        if (!ssl && rn && rn->type == GW_NODE_MAP) ssl = gw_node_get(rn, "ssl");
        if (!conf->redis.host) {
            gw_conf_error(cf, rn ? rn : n, "redis.host", "required when policy is redis");
            rc = -1;
        } else if (conf->redis.ssl) {
            gw_conf_error(cf, ssl ? ssl : n, "redis.ssl",
                          "TLS to Redis is not available: the hiredis library sluice is "
                          "built with (0.14, Debian 12) has no TLS support");
            rc = -1;
        } else if (resolve_redis(cf, rn ? rn : n, "redis.host", &conf->redis) < 0) {
            rc = -1;
        }
    }

    const struct gw_plugin_instance *pi = gw_conf_plugin(cf);
    const char *route = NO_SCOPE, *service = NO_SCOPE;
    if (pi && pi->route) route = scope_name(cf, pi->route->name, "route", pi->route->index);
    if (pi && pi->service)
        service = scope_name(cf, pi->service->name, "service", pi->service->index);
    conf->key_prefix = gw_sprintf(gw_conf_arena(cf), "ratelimit:%s:%s:", route, service);
    return rc;
}

static const struct gw_schema rl_schema = {
    .name = "rate-limiting",
    .size = sizeof(struct rl_conf),
    .fields = rl_fields,
    .validate = rl_validate,
};

/* --- per request --------------------------------------------------------- */

struct rl_ctx {
    struct rl_check check; /* first: rl_done gets &ctx->check */
    const struct rl_conf *conf;
    int64_t now_ms;
    int decided; /* headers below are ready */
    int stopped;
    long reset; /* seconds until the most restrictive period ends */
    double limit, remaining;
    double period_remaining[RL_NPERIODS];
};

static const char *identifier(struct gw_request *r, const struct rl_conf *conf)
{
    const char *id = NULL;
    switch (conf->limit_by) {
    case BY_CONSUMER:
    case BY_CREDENTIAL: /* no credential without a consumer: same fallback */
        if (r->consumer)
            id = r->consumer->username ? r->consumer->username : r->consumer->custom_id;
        break;
    case BY_SERVICE:
        if (r->service) id = r->service->name;
        break;
    case BY_HEADER:
        /* Kong: an empty value is a value; only a missing header falls back. */
        id = gw_headers_get(r->headers, conf->header_name);
        if (id) return id;
        break;
    case BY_PATH:
        if (strcmp(conf->path, r->path) == 0) id = conf->path;
        break;
    default: /* ip; consumer-group: there are no groups, Kong's fallback is the IP */
        break;
    }
    return id && *id ? id : r->client_ip;
}

/* The UTC calendar period holding now: [*start, *next). Months and years
 * have their real lengths: a counter must not end before its period. */
static void period_bounds(int p, time_t now, int64_t *start, int64_t *next)
{
    if (p < RL_MONTH) {
        *start = (int64_t)(now - now % period_seconds[p]);
        *next = *start + period_seconds[p];
        return;
    }
    struct tm tm;
    gmtime_r(&now, &tm);
    tm.tm_sec = tm.tm_min = tm.tm_hour = 0;
    tm.tm_mday = 1;
    if (p == RL_YEAR) tm.tm_mon = 0;
    struct tm t = tm;
    *start = (int64_t)timegm(&t);
    if (p == RL_YEAR)
        tm.tm_year++;
    else
        tm.tm_mon++; /* timegm normalises month 12 into January of the next year */
    *next = (int64_t)timegm(&tm);
}

/* Kong's headers: per period the limit and what is left after this
 * request; RateLimit-* for the period closest to its limit (ties: the
 * longest), its reset in whole seconds. */
static void decide(struct rl_ctx *ctx)
{
    const struct rl_conf *conf = ctx->conf;
    struct rl_check *c = &ctx->check;
    ctx->stopped = c->stop != 0;
    int best = -1;
    for (int i = 0; i < c->n; i++) {
        int p = conf->periods[i];
        double rem = conf->limit[p] - (double)c->usage[i];
        if (!c->stop || c->stop == i + 1) rem -= 1;
        if (rem < 0) rem = 0;
        ctx->period_remaining[i] = rem;
        if (best < 0 || rem < ctx->remaining ||
            (rem == ctx->remaining && period_seconds[p] > period_seconds[conf->periods[best]])) {
            best = i;
            ctx->limit = conf->limit[p];
            ctx->remaining = rem;
            /* Kong: the period's length minus the whole seconds gone; the
             * same, except that months and years have their real length. */
            long reset = (long)(c->expires[i] - ctx->now_ms / 1000);
            ctx->reset = reset < 1 ? 1 : reset;
        }
    }
    ctx->decided = 1;
}

/* A Redis that is down fails every request: each one says so in its own
 * log line (rate_limit_error=...), while the error log gets at most one
 * line a second per worker, with the count of the ones it left out. */
static void report_failure(struct gw_request *r, const char *err)
{
    static _Thread_local uint64_t last_us;
    static _Thread_local unsigned long left_out;
    gw_request_log_field(r, "rate_limit_error", "%s", err);
    uint64_t now = gw_now_us();
    if (last_us && now - last_us < 1000000) {
        left_out++;
        return;
    }
    if (left_out)
        gw_error("request_id=%s rate-limiting: %s (and %lu more failures in the last %.1f s)",
                 r->id, err, left_out, (double)(now - last_us) / 1e6);
    else
        gw_error("request_id=%s rate-limiting: %s", r->id, err);
    last_us = now;
    left_out = 0;
}

/* What the check's result means for the request: GW_OK (go on) or GW_DONE
 * (answered: over the limit, or Redis failed and fault_tolerant is off). */
static int conclude(struct gw_request *r, struct rl_ctx *ctx, const char *err)
{
    const struct rl_conf *conf = ctx->conf;
    if (err) {
        report_failure(r, err);
        if (conf->fault_tolerant) return GW_OK;
        return gw_respond_message(r, 500, "An unexpected error occurred");
    }
    decide(ctx);
    if (ctx->stopped) {
        gw_request_log_field(r, "rate_limited", "%s",
                             period_names[conf->periods[ctx->check.stop - 1]]);
        return gw_respond_message(r, (int)conf->error_code, "%s", conf->error_message);
    }
    return GW_OK;
}

static void redis_done(struct gw_request *r, struct rl_check *c, const char *err)
{
    struct rl_ctx *ctx = (struct rl_ctx *)c;
    gw_request_resume(r, conclude(r, ctx, err));
}

/* Kong's key, ratelimit:<route>:<service>:<identifier>:<period start, ms>:<period>,
 * built without printf (callgrind: two gw_sprintf calls were most of the
 * plugin's cost per request). */
static const char *counter_key(struct gw_request *r, const char *prefix, const char *id,
                               int64_t start_s, const char *period, size_t *len)
{
    char digits[24];
    const char *d = gw_u64_text(digits, (uint64_t)start_s);
    size_t nd = (size_t)(digits + 23 - d);
    size_t lp = strlen(prefix), li = strlen(id), lper = strlen(period);
    size_t n = lp + li + 1 + nd + 4 + lper;
    char *key = gw_alloc(r->arena, n + 1), *k = key;
    memcpy(k, prefix, lp);
    k += lp;
    memcpy(k, id, li);
    k += li;
    *k++ = ':';
    memcpy(k, d, nd);
    k += nd;
    memcpy(k, "000:", 4); /* seconds to milliseconds: periods start on whole seconds */
    k += 4;
    memcpy(k, period, lper + 1);
    *len = n;
    return key;
}

static int rl_access(struct gw_request *r, const void *conf_, void *ctx_)
{
    const struct rl_conf *conf = conf_;
    struct rl_ctx *ctx = ctx_;
    struct rl_check *c = &ctx->check;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t now = ts.tv_sec;
    ctx->conf = conf;
    ctx->now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    const char *id = identifier(r, conf);
    c->n = conf->n_periods;
    for (int i = 0; i < c->n; i++) {
        int p = conf->periods[i];
        int64_t start, next;
        period_bounds(p, now, &start, &next);
        c->key[i] = counter_key(r, conf->key_prefix, id, start, period_names[p], &c->key_len[i]);
        c->limit[i] = conf->limit[p];
        c->limit_text[i] = conf->limit_text[p];
        /* The counter lives until its period ends (Redis: from its first
         * count, which is in this period). */
        c->ttl[i] = (long)(next - (int64_t)now);
        c->expires[i] = next;
    }
    if (conf->policy == POLICY_LOCAL) {
        rl_local_check(c, (int64_t)now);
        return conclude(r, ctx, NULL);
    }
    const char *err = NULL;
    if (rl_redis_check(r, &conf->redis, c, redis_done, &err) < 0) return conclude(r, ctx, err);
    return GW_AGAIN;
}

/* Header values as Kong prints them (Lua numbers: "5", "0.5"). Nearly
 * always whole numbers, written without printf: this runs on every answer. */
static void set_number(struct gw_request *r, const char *name, double v)
{
    const char *text;
    if (v >= 0 && v < 1e15 && v == (double)(uint64_t)v) {
        char buf[24];
        text = gw_strdup(r->arena, gw_u64_text(buf, (uint64_t)v));
    } else {
        text = gw_sprintf(r->arena, "%.15g", v);
    }
    gw_headers_set(r->response_headers, name, text);
}

static int rl_response_headers(struct gw_request *r, const void *conf_, void *ctx_)
{
    const struct rl_conf *conf = conf_;
    struct rl_ctx *ctx = ctx_;
    if (!ctx->decided || conf->hide_client_headers) return GW_OK;
    for (int i = 0; i < ctx->check.n; i++) {
        int p = conf->periods[i];
        set_number(r, limit_headers[p], conf->limit[p]);
        set_number(r, remaining_headers[p], ctx->period_remaining[i]);
    }
    set_number(r, "RateLimit-Limit", ctx->limit);
    set_number(r, "RateLimit-Remaining", ctx->remaining);
    set_number(r, "RateLimit-Reset", (double)ctx->reset);
    if (ctx->stopped) set_number(r, "Retry-After", (double)ctx->reset);
    return GW_OK;
}

const struct gw_plugin gw_plugin_rate_limiting = {
    .name = "rate-limiting",
    .priority = 910,
    .schema = &rl_schema,
    .ctx_size = sizeof(struct rl_ctx),
    .access = rl_access,
    .response_headers = rl_response_headers,
    .worker_exit = rl_redis_worker_exit,
};
