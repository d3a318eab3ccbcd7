/*
 * Logging: one line per event on stderr (systemd captures it), with an
 * ISO-8601 timestamp, the level and the worker. The level check is an inline
 * comparison so that a disabled debug line costs nothing on the hot path.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_NOTICE, GW_LOG_WARN, GW_LOG_ERROR };

extern enum gw_log_level gw_log_threshold;

void gw_log_write(enum gw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* From gw_log_async_start until gw_log_async_stop, lines go to a queue that
 * a writer thread empties, so that a stderr that does not keep up (journald
 * busy, a pipe nobody reads) never blocks an event loop: past
 * GW_LOG_QUEUE_MAX bytes waiting, lines are dropped and counted, and the
 * count is logged once the writer catches up. Before and after, and in
 * `sluice -t`, each line is one write(2) of its own. stop writes what is
 * queued before it returns; call it once the workers have stopped. */
#define GW_LOG_QUEUE_MAX (4u * 1024 * 1024)
int gw_log_async_start(void);
void gw_log_async_stop(void);

/* Values in a log line, so that no value can end its field early or start
 * a line of its own: gw_log_escape writes s with '"' and '\\' backslashed
 * and control bytes (CR, LF, ESC, DEL...) as \\xHH, as nginx does, and
 * returns the end (no NUL); gw_log_escaped_len is the room that takes.
 * gw_log_needs_quotes: s is empty or holds a space, '=' or a byte to
 * escape, so it goes as key="..." rather than key=value. */
size_t gw_log_escaped_len(const char *s);
char *gw_log_escape(char *dst, const char *s);
int gw_log_needs_quotes(const char *s);

/* Returns -1 for an unknown name. */
int gw_log_level_parse(const char *name);

#define gw_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= gw_log_threshold) gw_log_write((level), __VA_ARGS__);                       \
    } while (0)

#define gw_debug(...) gw_log(GW_LOG_DEBUG, __VA_ARGS__)
#define gw_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_notice(...) gw_log(GW_LOG_NOTICE, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)

#endif
