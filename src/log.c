#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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

/* "2026-01-02T03:04:05.678Z info [w0] " into buf; returns its length. */
static size_t format_prefix(char *buf, size_t size, enum gw_log_level level, const char *who)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t p = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    int m;
    if (who)
        m = snprintf(buf + p, size - p, ".%03ldZ %s [%s] ", (long)tv.tv_usec / 1000,
                     level_names[level], who);
    else if (gw_log_worker >= 0)
        m = snprintf(buf + p, size - p, ".%03ldZ %s [w%d] ", (long)tv.tv_usec / 1000,
                     level_names[level], gw_log_worker);
    else
        m = snprintf(buf + p, size - p, ".%03ldZ %s [main] ", (long)tv.tv_usec / 1000,
                     level_names[level]);
    if (m > 0) p += (size_t)m;
    return p < size ? p : size - 1;
}

/* --- the queue and its writer ------------------------------------------ */

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static pthread_t writer;
static int writer_running, writer_stopping, writer_waiting;
static char *queue; /* lines waiting, in the order they were logged */
static size_t queue_len, queue_cap;
static unsigned long dropped; /* lines refused since the writer last looked */

/* All of buf to stderr, whatever stderr is (a blocking write may be partial
 * on a pipe; someone may have made the descriptor non-blocking). A stderr
 * that is gone loses the lines: there is nowhere else to say so. */
static void write_all(const char *buf, size_t n)
{
    while (n) {
        ssize_t w = write(STDERR_FILENO, buf, n);
        if (w > 0) {
            buf += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = STDERR_FILENO, .events = POLLOUT};
            poll(&pfd, 1, -1);
        } else {
            return;
        }
    }
}

static void *writer_main(void *arg)
{
    (void)arg;
    char *mine = NULL; /* swapped with the queue: loggers never wait on a write */
    size_t mine_cap = 0;
    pthread_mutex_lock(&queue_lock);
    for (;;) {
        while (!queue_len && !dropped && !writer_stopping) {
            writer_waiting = 1;
            pthread_cond_wait(&queue_cond, &queue_lock);
            writer_waiting = 0;
        }
        if (!queue_len && !dropped) break; /* stopping, and nothing left */
        char *batch = queue;
        size_t len = queue_len, batch_cap = queue_cap;
        queue = mine;
        queue_cap = mine_cap;
        queue_len = 0;
        mine = batch;
        mine_cap = batch_cap;
        unsigned long lost = dropped;
        dropped = 0;
        pthread_mutex_unlock(&queue_lock);

        write_all(batch, len);
        if (lost) {
            char line[160];
            format_prefix(line, sizeof(line), GW_LOG_WARN, "log");
            size_t p = strlen(line);
            int m = snprintf(line + p, sizeof(line) - p,
                             "%lu log lines dropped: stderr did not keep up\n", lost);
            if (m > 0) write_all(line, p + (size_t)m);
        }
        pthread_mutex_lock(&queue_lock);
    }
    pthread_mutex_unlock(&queue_lock);
    free(mine);
    return NULL;
}

int gw_log_async_start(void)
{
    pthread_mutex_lock(&queue_lock);
    writer_stopping = 0;
    int rc = pthread_create(&writer, NULL, writer_main, NULL);
    writer_running = rc == 0;
    pthread_mutex_unlock(&queue_lock);
    return rc == 0 ? 0 : -1;
}

void gw_log_async_stop(void)
{
    pthread_mutex_lock(&queue_lock);
    if (!writer_running) {
        pthread_mutex_unlock(&queue_lock);
        return;
    }
    writer_stopping = 1;
    pthread_cond_signal(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
    pthread_join(writer, NULL);
    pthread_mutex_lock(&queue_lock);
    writer_running = 0;
    free(queue);
    queue = NULL;
    queue_len = queue_cap = 0;
    pthread_mutex_unlock(&queue_lock);
}

/* Queues one whole line, or writes it now when there is no writer. */
static void emit(const char *line, size_t n)
{
    pthread_mutex_lock(&queue_lock);
    if (!writer_running || writer_stopping) {
        /* Before start, after stop, or from the last lines of a stop:
         * written here, still one line per write(2). */
        write_all(line, n);
        pthread_mutex_unlock(&queue_lock);
        return;
    }
    if (queue_len + n > GW_LOG_QUEUE_MAX) {
        dropped++;
    } else {
        if (queue_len + n > queue_cap) {
            size_t cap = queue_cap ? queue_cap : 64 * 1024;
            while (cap < queue_len + n)
                cap *= 2;
            char *q = realloc(queue, cap);
            if (q) {
                queue = q;
                queue_cap = cap;
            }
        }
        if (queue_len + n <= queue_cap) {
            memcpy(queue + queue_len, line, n);
            queue_len += n;
        } else {
            dropped++;
        }
    }
    if (writer_waiting) pthread_cond_signal(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
}

/* --- lines -------------------------------------------------------------- */

/* One line, formatted once into a stack buffer (long lines, payload
 * logging, get a heap buffer instead of being cut), queued whole so lines
 * from different workers never interleave. */
void gw_log_write(enum gw_log_level level, const char *fmt, ...)
{
    char stack[4096];
    size_t p = format_prefix(stack, 96, level, NULL);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(stack + p, sizeof(stack) - p, fmt, ap);
    va_end(ap);
    if (m < 0) return;
    char *line = stack;
    size_t total = p + (size_t)m + 1;
    if (total > sizeof(stack)) {
        line = malloc(total);
        if (!line) return;
        memcpy(line, stack, p);
        va_start(ap, fmt);
        vsnprintf(line + p, (size_t)m + 1, fmt, ap);
        va_end(ap);
    }
    line[total - 1] = '\n';
    emit(line, total);
    if (line != stack) free(line);
}

/* --- values in a line --------------------------------------------------- */

static size_t escaped_width(unsigned char ch)
{
    if (ch == '"' || ch == '\\') return 2;
    if (ch < 0x20 || ch == 0x7f) return 4;
    return 1;
}

size_t gw_log_escaped_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += escaped_width(*p);
    return n;
}

char *gw_log_escape(char *dst, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (escaped_width(*p)) {
        case 2:
            *dst++ = '\\';
            *dst++ = (char)*p;
            break;
        case 4:
            *dst++ = '\\';
            *dst++ = 'x';
            *dst++ = hex[*p >> 4];
            *dst++ = hex[*p & 15];
            break;
        default:
            *dst++ = (char)*p;
        }
    }
    return dst;
}

int gw_log_needs_quotes(const char *s)
{
    if (!*s) return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == ' ' || *p == '=' || escaped_width(*p) != 1) return 1;
    return 0;
}
