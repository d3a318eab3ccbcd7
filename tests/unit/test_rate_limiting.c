/*
 * rate-limiting without the daemon: its config errors through the real
 * loader (file:line:col, field path, Kong's rules), the counter keys it
 * derives from the plugin's scope, and the local store's check: count only
 * when no period is at its limit, exactly, under contention from threads.
 */
#include <pthread.h>

#include "gw_test.h"
#include "config.h"
#include "gw_test_config.h"
#include "../../plugins/rate-limiting/rate_limiting.h"

#define GLOBAL(conf) "_format_version: '3.0'\nplugins:\n- name: rate-limiting\n  config: " conf "\n"

static void config_errors(void)
{
    CHECK_STR(gw_test_fails(GLOBAL("{}")),
              "kong.yml:4:11: plugins[0].config: at least one of second, "
              "minute, hour, day, month, year is required");
    CHECK_STR(gw_test_fails(GLOBAL("{minute: 0}")),
              "kong.yml:4:20: plugins[0].config.minute: must be greater than 0");
    CHECK_STR(gw_test_fails(GLOBAL("{hour: -3}")),
              "kong.yml:4:18: plugins[0].config.hour: must be greater than 0");
    CHECK_STR(gw_test_fails(GLOBAL("{second: 20, minute: 10}")),
              "kong.yml:4:32: plugins[0].config.minute: the limit for minute (10) cannot be lower "
              "than the limit for second (20)");
    CHECK_STR(gw_test_fails(GLOBAL("{minute: 5, limit_by: header}")),
              "kong.yml:4:11: plugins[0].config.header_name: required when limit_by is header");
    CHECK_STR(gw_test_fails(GLOBAL("{minute: 5, limit_by: path}")),
              "kong.yml:4:11: plugins[0].config.path: required when limit_by is path");
    CHECK_STR(gw_test_fails(GLOBAL("{minute: 5, limit_by: user}")),
              "kong.yml:4:33: plugins[0].config.limit_by: expected one of consumer, credential, "
              "ip, service, header, path, consumer-group");
    CHECK_STR(gw_test_fails(GLOBAL("{minute: 5, policy: cluster}")),
              "kong.yml:4:31: plugins[0].config.policy: cluster keeps counters in Kong's "
              "database, and sluice has none: use local or redis");
    CHECK_STR(gw_test_fails(GLOBAL("{minute: 5, policy: redis}")),
              "kong.yml:4:11: plugins[0].config.redis.host: required when policy is redis");
    CHECK_STR(
        gw_test_fails(GLOBAL("{minute: 5, policy: redis, redis: {host: 127.0.0.1, ssl: true}}")),
        "kong.yml:4:68: plugins[0].config.redis.ssl: TLS to Redis is not available: the "
        "hiredis library sluice is built with (0.14, Debian 12) has no TLS support");
    CHECK_STR(gw_test_fails(GLOBAL("{minute: 5, sync_rate: 10}")),
              "kong.yml:4:34: plugins[0].config.sync_rate: only -1 is supported: counters are "
              "updated synchronously");
    CHECK_STR(
        gw_test_fails(GLOBAL("{minute: 5, policy: redis, redis_host: 127.0.0.1, redis_port: 0}")),
        "kong.yml:4:73: plugins[0].config.redis_port: must be between 1 and 65535");
    /* A 1xx is an interim answer: clients would wait for the real one. */
    CHECK_STR(gw_test_fails(GLOBAL("{minute: 5, error_code: 100}")),
              "kong.yml:4:35: plugins[0].config.error_code: must be between 200 and 599");
    CHECK_STR(
        gw_test_fails(GLOBAL("{minute: 5, policy: redis, redis: {host: 127.0.0.1, color: red}}")),
        "kong.yml:4:63: plugins[0].config.redis.color: unknown field");
    /* Every error, not the first only. */
    const char *all =
        gw_test_fails(GLOBAL("{second: 0, minute: 5, policy: cluster, sync_rate: 3}"));
    CHECK(strstr(all, "config.second: must be greater than 0") != NULL);
    CHECK(strstr(all, "config.policy: cluster") != NULL);
    CHECK(strstr(all, "config.sync_rate: only -1") != NULL);
}

/* The conf of the n-th plugin instance of a loaded config. */
static const struct rl_conf *conf_of(struct gw_config *cfg, size_t n)
{
    return cfg->plugins[n]->conf;
}

static void keys_and_defaults(void)
{
    struct gw_config *cfg =
        gw_test_loads("_format_version: '3.0'\n"
                      "plugins:\n"
                      "- name: rate-limiting\n"
                      "  config: {hour: 10, minute: 3}\n"
                      "services:\n"
                      "- name: svc\n"
                      "  url: http://127.0.0.1:1\n"
                      "  plugins:\n"
                      "  - name: rate-limiting\n"
                      "    config: {day: 7, policy: redis, redis_host: localhost,\n"
                      "             redis_port: 6390, redis_password: pw}\n"
                      "  routes:\n"
                      "  - name: rt\n"
                      "    paths: [/x]\n"
                      "    plugins:\n"
                      "    - name: rate-limiting\n"
                      "      config: {second: 1, year: 100, redis: {host: h}}\n");
    if (!cfg) return;
    const struct rl_conf *g = NULL, *s = NULL, *r = NULL;
    for (size_t i = 0; i < 3; i++) {
        const struct rl_conf *c = conf_of(cfg, i);
        if (c->limit[RL_HOUR] == 10) g = c;
        if (c->limit[RL_DAY] == 7) s = c;
        if (c->limit[RL_YEAR] == 100) r = c;
    }
    CHECK(g && s && r);
    if (!g || !s || !r) goto out;
    /* Kong's keys: the plugin's own route and service, EMPTY_UUID for none. */
    CHECK_STR(g->key_prefix, "ratelimit:00000000-0000-0000-0000-000000000000:"
                             "00000000-0000-0000-0000-000000000000:");
    CHECK_STR(s->key_prefix, "ratelimit:00000000-0000-0000-0000-000000000000:svc:");
    CHECK_STR(r->key_prefix, "ratelimit:rt:00000000-0000-0000-0000-000000000000:");
    /* Periods shortest first, whatever the order in the file. */
    CHECK_INT(g->n_periods, 2);
    CHECK_INT(g->periods[0], RL_MINUTE);
    CHECK_INT(g->periods[1], RL_HOUR);
    CHECK_INT(g->error_code, 429);
    CHECK_STR(g->error_message, "API rate limit exceeded");
    CHECK_INT(g->fault_tolerant, 1);
    /* Flat redis_* fields fill the record; the name is resolved at load. */
    CHECK_STR(s->redis.host, "localhost");
    CHECK(strcmp(s->redis.addr, "127.0.0.1") == 0 || strcmp(s->redis.addr, "::1") == 0);
    CHECK_INT(s->redis.port, 6390);
    CHECK_STR(s->redis.password, "pw");
    CHECK_INT(s->redis.timeout, 2000);
    /* A redis block without policy redis is inert: nothing resolved. */
    CHECK(r->redis.addr == NULL);
out:
    gw_config_free(cfg);
}

static struct rl_check two_periods(const char *k1, double l1, const char *k2, double l2)
{
    struct rl_check c = {.n = 2};
    c.key[0] = k1;
    c.key_len[0] = strlen(k1);
    c.limit[0] = l1;
    c.expires[0] = 1000;
    c.key[1] = k2;
    c.key_len[1] = strlen(k2);
    c.limit[1] = l2;
    c.expires[1] = 2000;
    return c;
}

static void local_store(void)
{
    /* minute 2, hour 3: the third request stops on the minute... */
    for (int i = 0; i < 2; i++) {
        struct rl_check c = two_periods("t:m", 2, "t:h", 3);
        rl_local_check(&c, 500);
        CHECK_INT(c.stop, 0);
        CHECK_INT(c.usage[0], i);
        CHECK_INT(c.usage[1], i);
    }
    struct rl_check c = two_periods("t:m", 2, "t:h", 3);
    rl_local_check(&c, 500);
    CHECK_INT(c.stop, 1);
    CHECK_INT(c.usage[0], 2);
    CHECK_INT(c.usage[1], 2);
    /* ...and was not counted: in the next minute the hour has one left. */
    c = two_periods("t:m2", 2, "t:h", 3);
    rl_local_check(&c, 500);
    CHECK_INT(c.stop, 0);
    CHECK_INT(c.usage[1], 2);
    c = two_periods("t:m2", 2, "t:h", 3);
    rl_local_check(&c, 500);
    CHECK_INT(c.stop, 2);
    CHECK_INT(c.usage[0], 1);
    /* An expired counter reads as zero and starts again. */
    c = two_periods("t:m", 2, "t:h", 3);
    c.expires[0] = c.expires[1] = 3000;
    rl_local_check(&c, 2500);
    CHECK_INT(c.stop, 0);
    CHECK_INT(c.usage[0], 0);
    CHECK_INT(c.usage[1], 0);
    /* Many keys: the table grows and sweeps, counts stay exact. */
    char key[32];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 5000; i++) {
            snprintf(key, sizeof(key), "grow:%d", i);
            struct rl_check g = {.n = 1, .key = {key}, .key_len = {strlen(key)}, .limit = {10}};
            g.expires[0] = 4000;
            rl_local_check(&g, 3000);
            CHECK(g.usage[0] == round);
        }
}

#define THREADS 4
#define PER_THREAD 5000
static long admitted[THREADS];

static void *hammer(void *arg)
{
    long *mine = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        struct rl_check c = {.n = 1, .key = {"race"}, .key_len = {4}, .limit = {7777}};
        c.expires[0] = 10000;
        rl_local_check(&c, 5000);
        if (!c.stop) (*mine)++;
    }
    return NULL;
}

static void local_store_threads(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, &admitted[i]);
    long total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += admitted[i];
    }
    /* 20000 attempts at a limit of 7777: exactly the limit gets through. */
    CHECK_INT(total, 7777);
}

int main(void)
{
    config_errors();
    keys_and_defaults();
    local_store();
    local_store_threads();
    return gw_test_done("rate_limiting");
}
