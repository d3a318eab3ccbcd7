/*
 * Review of rate-limiting (commit 08a7021): the local policy's month and
 * year counters through the plugin's real access hook, at chosen instants.
 *
 * The wall clock is this file's clock_gettime (it wins over libc's for the
 * whole test binary): CLOCK_REALTIME reads fake_now when it is set.
 *
 * A month is a calendar month (the key names its first day), but the local
 * entry's expiry is the period start + 30 days (Kong's EXPIRATION length),
 * so in a 31-day month the counter is forgotten on the 31st while the key
 * is still the same: the limit starts over for one more day. Likewise the
 * year counter on December 31st of a leap year.
 */
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "gw_test.h"
#include "config.h"
#include "gw_test_config.h"
#include "proxy.h"
#include "gw_plugin.h"
#include "../../plugins/rate-limiting/rate_limiting.h"

static time_t fake_now;

int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (id == CLOCK_REALTIME && fake_now) {
        ts->tv_sec = fake_now;
        ts->tv_nsec = 0;
        return 0;
    }
    return (int)syscall(SYS_clock_gettime, id, ts);
}

static time_t utc(int y, int mon, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return timegm(&tm);
}

/* One request from client_ip at `at` through the access hook: GW_OK or GW_DONE. */
static int access_at(const struct gw_plugin_instance *pi, const char *client_ip, time_t at)
{
    extern const struct gw_plugin gw_plugin_rate_limiting;
    struct proxy_request *rq = calloc(1, sizeof(*rq));
    struct gw_request *r = &rq->pub;
    r->arena = gw_arena_new(4096);
    r->id = "00000000000000000000000000000000";
    r->client_ip = client_ip;
    r->path = "/";
    void *ctx = gw_calloc(r->arena, gw_plugin_rate_limiting.ctx_size);
    fake_now = at;
    int rc = gw_plugin_rate_limiting.access(r, pi->conf, ctx);
    fake_now = 0;
    if (rq->early_body) evbuffer_free(rq->early_body);
    free(rq->log_extra);
    gw_arena_free(r->arena);
    free(rq);
    return rc;
}

static void month_counter_lasts_the_whole_month(void)
{
    struct gw_config *cfg = gw_test_loads("_format_version: '3.0'\n"
                                          "plugins:\n"
                                          "- name: rate-limiting\n"
                                          "  config: {month: 2, limit_by: ip}\n");
    if (!cfg) return;
    const struct gw_plugin_instance *pi = cfg->plugins[0];
    /* January 2025 has 31 days. Two requests on the 1st use the month. */
    CHECK_INT(access_at(pi, "10.0.0.1", utc(2025, 1, 1, 0, 0, 10)), GW_OK);
    CHECK_INT(access_at(pi, "10.0.0.1", utc(2025, 1, 1, 0, 0, 11)), GW_OK);
    CHECK_INT(access_at(pi, "10.0.0.1", utc(2025, 1, 15, 12, 0, 0)), GW_DONE);
    /* Still January: still refused. */
    CHECK_INT(access_at(pi, "10.0.0.1", utc(2025, 1, 31, 0, 0, 10)), GW_DONE);
    /* February: a new counter. */
    CHECK_INT(access_at(pi, "10.0.0.1", utc(2025, 2, 1, 0, 0, 10)), GW_OK);
    gw_config_free(cfg);
}

static void year_counter_lasts_the_whole_leap_year(void)
{
    struct gw_config *cfg = gw_test_loads("_format_version: '3.0'\n"
                                          "plugins:\n"
                                          "- name: rate-limiting\n"
                                          "  config: {year: 1, limit_by: ip}\n");
    if (!cfg) return;
    const struct gw_plugin_instance *pi = cfg->plugins[0];
    /* 2024 has 366 days. */
    CHECK_INT(access_at(pi, "10.0.0.2", utc(2024, 1, 1, 0, 0, 10)), GW_OK);
    CHECK_INT(access_at(pi, "10.0.0.2", utc(2024, 6, 1, 0, 0, 0)), GW_DONE);
    CHECK_INT(access_at(pi, "10.0.0.2", utc(2024, 12, 31, 12, 0, 0)), GW_DONE);
    CHECK_INT(access_at(pi, "10.0.0.2", utc(2025, 1, 1, 0, 0, 10)), GW_OK);
    gw_config_free(cfg);
}

int main(void)
{
    month_counter_lasts_the_whole_month();
    year_counter_lasts_the_whole_leap_year();
    return gw_test_done("rate_limiting_review");
}
