#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "gw_log.h"

enum gw_log_level gw_log_threshold = GW_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "notice", "warn", "error"};

/* Set by each worker thread so its lines say where they came from. */
_Thread_local int gw_log_worker = -1;

int gw_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0) return (int)i;
    return -1;
}

/* One write(2) per line, so lines from different workers never interleave. */
void gw_log_write(enum gw_log_level level, const char *fmt, ...)
{
    char line[8192];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    if (gw_log_worker >= 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s [w%d] ",
                      (long)tv.tv_usec / 1000, level_names[level], gw_log_worker);
    else
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s [main] ",
                      (long)tv.tv_usec / 1000, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}
