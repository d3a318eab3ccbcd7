#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* One write(2) per line, so lines from different workers never interleave.
 * Long lines (payload logging) get a heap buffer instead of being cut. */
void gw_log_write(enum gw_log_level level, const char *fmt, ...)
{
    char stack[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char prefix[96];
    int p = (int)strftime(prefix, sizeof(prefix), "%Y-%m-%dT%H:%M:%S", &tm);
    if (gw_log_worker >= 0)
        p += snprintf(prefix + p, sizeof(prefix) - (size_t)p, ".%03ldZ %s [w%d] ",
                      (long)tv.tv_usec / 1000, level_names[level], gw_log_worker);
    else
        p += snprintf(prefix + p, sizeof(prefix) - (size_t)p, ".%03ldZ %s [main] ",
                      (long)tv.tv_usec / 1000, level_names[level]);
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int m = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (m < 0) m = 0;
    size_t total = (size_t)p + (size_t)m + 1;
    char *line = total <= sizeof(stack) ? stack : malloc(total);
    if (!line) {
        va_end(ap);
        return;
    }
    memcpy(line, prefix, (size_t)p);
    vsnprintf(line + p, (size_t)m + 1, fmt, ap);
    va_end(ap);
    line[total - 1] = '\n';
    fwrite(line, 1, total, stderr);
    if (line != stack) free(line);
}
