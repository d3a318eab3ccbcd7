/*
 * Stream framing: Server-Sent Events (OpenAI, Anthropic, Azure, Mistral)
 * and newline-delimited JSON (Ollama). Network reads split frames anywhere,
 * so the parser keeps the partial line and the event being built.
 */
#include <string.h>

#include "gw_arena.h"
#include "llm.h"

#define SSE_MAX_DEFAULT (8u * 1024 * 1024)

void gw_sse_init(struct gw_sse_parser *p, struct gw_arena *arena, int ndjson)
{
    memset(p, 0, sizeof(*p));
    p->arena = arena;
    p->ndjson = ndjson;
    p->max_size = SSE_MAX_DEFAULT;
}

/* Grows an arena buffer by doubling; the old block is abandoned to the
 * arena, which costs at most as much again as the largest frame. */
static int buf_append(struct gw_sse_parser *p, char **buf, size_t *len, size_t *cap, const char *s,
                      size_t n)
{
    if (*len + n + 1 > p->max_size) {
        p->too_large = 1;
        return -1;
    }
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        while (ncap < *len + n + 1)
            ncap *= 2;
        char *nb = gw_alloc(p->arena, ncap);
        if (*len) memcpy(nb, *buf, *len);
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int dispatch(struct gw_sse_parser *p, gw_sse_event_cb cb, void *arg)
{
    int rc = 0;
    /* An empty data buffer is not an event (WHATWG SSE, "dispatch the
     * event"): a bare "data:" heartbeat must not reach the translators. */
    if (p->has_data && p->data_len) {
        const char *data = p->data ? p->data : "";
        rc = cb(arg, p->event[0] ? p->event : NULL, data, p->data_len);
    }
    p->data_len = 0;
    if (p->data) p->data[0] = '\0';
    p->has_data = 0;
    p->event[0] = '\0';
    return rc;
}

/* One complete line (without its terminator). */
static int process_line(struct gw_sse_parser *p, const char *line, size_t n, gw_sse_event_cb cb,
                        void *arg)
{
    if (p->ndjson) {
        while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        size_t i = 0;
        while (i < n && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == n) return 0;
        return cb(arg, NULL, line + i, n - i);
    }
    if (n == 0) return dispatch(p, cb, arg);
    if (line[0] == ':') return 0; /* comment */
    const char *colon = memchr(line, ':', n);
    size_t flen = colon ? (size_t)(colon - line) : n;
    const char *val = colon ? colon + 1 : line + n;
    size_t vlen = colon ? n - flen - 1 : 0;
    if (vlen && val[0] == ' ') {
        val++;
        vlen--;
    }
    if (flen == 4 && memcmp(line, "data", 4) == 0) {
        if (p->has_data && buf_append(p, &p->data, &p->data_len, &p->data_cap, "\n", 1) < 0)
            return -1;
        if (buf_append(p, &p->data, &p->data_len, &p->data_cap, val, vlen) < 0) return -1;
        p->has_data = 1;
    } else if (flen == 5 && memcmp(line, "event", 5) == 0) {
        size_t k = vlen < sizeof(p->event) - 1 ? vlen : sizeof(p->event) - 1;
        memcpy(p->event, val, k);
        p->event[k] = '\0';
    }
    /* id, retry and unknown fields: nothing a translation needs. */
    return 0;
}

int gw_sse_feed(struct gw_sse_parser *p, const char *buf, size_t len, gw_sse_event_cb cb, void *arg)
{
    size_t i = 0;
    while (i < len) {
        /* A \n right after a \r that ended the previous line is the second
         * half of a \r\n split across reads. */
        if (p->last_cr && buf[i] == '\n') {
            p->last_cr = 0;
            i++;
            continue;
        }
        p->last_cr = 0;
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        if (j == len) {
            return buf_append(p, &p->line, &p->line_len, &p->line_cap, buf + i, len - i) < 0 ? -1
                                                                                             : 0;
        }
        const char *line;
        size_t n;
        if (p->line_len) {
            if (buf_append(p, &p->line, &p->line_len, &p->line_cap, buf + i, j - i) < 0) return -1;
            line = p->line;
            n = p->line_len;
        } else {
            line = buf + i;
            n = j - i;
        }
        if (buf[j] == '\r') {
            if (j + 1 < len) {
                if (buf[j + 1] == '\n') j++;
            } else {
                p->last_cr = 1;
            }
        }
        i = j + 1;
        int rc = process_line(p, line, n, cb, arg);
        p->line_len = 0;
        if (rc < 0) return -1;
    }
    return 0;
}

int gw_sse_finish(struct gw_sse_parser *p, gw_sse_event_cb cb, void *arg)
{
    /* Lenient where the SSE spec discards: real streams end on a last
     * event with no blank line, or no newline at all ("data: [DONE]", in
     * Kong's own fixtures). A frame cut by the close is told apart by its
     * translator (gw_llm_call.at_eof). */
    int rc = 0;
    if (p->line_len) {
        rc = process_line(p, p->line, p->line_len, cb, arg);
        p->line_len = 0;
    }
    if (rc == 0 && !p->ndjson) rc = dispatch(p, cb, arg);
    return rc;
}
