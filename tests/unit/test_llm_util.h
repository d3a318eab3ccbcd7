/*
 * Helpers shared by the test_llm_*.c tests: locating the Kong conformance
 * fixtures, loading them as JSON, running an SSE/NDJSON body through a
 * provider's stream translator.
 */
#ifndef TEST_LLM_UTIL_H
#define TEST_LLM_UTIL_H

#include <libgen.h>
#include <limits.h>

#include <event2/buffer.h>

#include "gw_arena.h"
#include "gw_test.h"
#include "llm/llm.h"

/* ctest sets SLUICE_CONFORMANCE_DIR; otherwise ../shared/conformance next
 * to the source tree this file is in. */
static inline const char *fixture_root(void)
{
    static char root[PATH_MAX];
    if (root[0]) return root;
    const char *env = getenv("SLUICE_CONFORMANCE_DIR");
    if (env && *env) {
        snprintf(root, sizeof(root), "%s/kong-ai-proxy", env);
    } else {
        char src[PATH_MAX];
        snprintf(src, sizeof(src), "%s", __FILE__);
        /* tests/unit/x.c -> source root -> its parent */
        char *d = dirname(dirname(dirname(src)));
        snprintf(root, sizeof(root), "%s/../shared/conformance/kong-ai-proxy", d);
    }
    return root;
}

static inline char *fixture_text(const char *rel, size_t *len)
{
    char path[PATH_MAX + 256];
    if (snprintf(path, sizeof(path), "%s/%s", fixture_root(), rel) >= (int)sizeof(path))
        return NULL;
    char *s = gw_test_read_file(path, len);
    if (!s) fprintf(stderr, "missing fixture %s\n", path);
    return s;
}

static inline cJSON *fixture_json(const char *rel)
{
    char *s = fixture_text(rel, NULL);
    if (!s) return NULL;
    cJSON *j = cJSON_Parse(s);
    if (!j) fprintf(stderr, "fixture %s is not JSON\n", rel);
    free(s);
    return j;
}

/* Prints both sides when a semantic comparison fails. */
static inline int json_same(const cJSON *got, const cJSON *want, const char *what)
{
    if (got && want && cJSON_Compare(got, want, 1)) return 1;
    char *g = got ? cJSON_Print(got) : NULL, *w = want ? cJSON_Print(want) : NULL;
    fprintf(stderr, "%s differs\n got: %s\nwant: %s\n", what, g ? g : "(null)", w ? w : "(null)");
    free(g);
    free(w);
    return 0;
}

/* Collects the `data:` payloads of an OpenAI SSE body. */
struct collected {
    char *v[256];
    size_t n;
};

static inline int collect_cb(void *arg, const char *event, const char *data, size_t len)
{
    struct collected *c = arg;
    (void)event;
    if (c->n < 256) c->v[c->n++] = strndup(data, len);
    return 0;
}

static inline void collected_free(struct collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    c->n = 0;
}

static inline void collect_sse(struct gw_arena *a, struct evbuffer *buf, struct collected *out)
{
    struct gw_sse_parser p;
    gw_sse_init(&p, a, 0);
    size_t n = evbuffer_get_length(buf);
    char *s = (char *)evbuffer_pullup(buf, (ssize_t)n);
    gw_sse_feed(&p, s, n, collect_cb, out);
    gw_sse_finish(&p, collect_cb, out);
}

struct stream_ctx {
    struct gw_llm_call *call;
    struct evbuffer *out;
};

static inline int stream_cb(void *arg, const char *event, const char *data, size_t len)
{
    struct stream_ctx *s = arg;
    return s->call->provider->stream_frame(s->call, event, data, len, s->out) < 0 ? -1 : 0;
}

/* Feeds body to the call's stream translator in pieces of `step` bytes
 * (0: all at once) and ends the stream. Returns gw_llm_stream_end's rc. */
static inline int run_stream(struct gw_llm_call *c, int ndjson, const char *body, size_t len,
                             size_t step, struct evbuffer *out)
{
    struct gw_sse_parser p;
    gw_sse_init(&p, c->arena, ndjson);
    struct stream_ctx s = {c, out};
    if (!step) step = len ? len : 1;
    for (size_t i = 0; i < len; i += step) {
        size_t k = len - i < step ? len - i : step;
        if (gw_sse_feed(&p, body + i, k, stream_cb, &s) < 0) break;
    }
    gw_sse_finish(&p, stream_cb, &s);
    return gw_llm_stream_end(c, out);
}

#endif
