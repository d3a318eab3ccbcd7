/*
 * libFuzzer driver for the LLM layer: the first byte picks a target, the
 * rest is input. Targets: the SSE and NDJSON framers, and every provider's
 * parse_response and stream translator for each route and format.
 * Not in the default build:
 *   clang -g -fsanitize=fuzzer,address,undefined -Iinclude -Isrc FILES \
 *     $(pkg-config --cflags --libs libevent libcjson openssl) -lm -o fuzz_llm
 * with FILES = src/arena.c, every .c of src/llm and src/llm/providers, this file.
 */
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "gw_arena.h"
#include "llm/llm.h"

struct fuzz_stream {
    struct gw_llm_call *c;
    struct evbuffer *out;
};

static int frame_cb(void *arg, const char *event, const char *data, size_t len)
{
    struct fuzz_stream *s = arg;
    if (!s) return 0;
    s->c->provider->stream_frame(s->c, event, data, len, s->out);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t n_prov = 0;
    while (gw_llm_providers[n_prov])
        n_prov++;
    uint8_t sel = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_options o = {0};
    o.llama2_format = o.mistral_format = 1 + (sel >> 6) % 3; /* openai, ollama, raw */
    const struct gw_llm_provider *p = gw_llm_providers[(sel & 7) % n_prov];
    enum gw_llm_route route = (enum gw_llm_route)((sel >> 3) & 3) % 3;
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, p, route, &o, "m");
    struct evbuffer *out = evbuffer_new();

    /* 1. parse_response with a 200 and a 400. */
    const char *err = NULL;
    cJSON *r = p->parse_response(&c, 200, in, len, &err);
    cJSON_Delete(r);
    r = p->parse_response(&c, 400, in, len, &err);
    cJSON_Delete(r);

    /* 2. the input as a stream, fed in uneven pieces. */
    gw_llm_call_init(&c, a, p, route, &o, "m");
    c.stream = 1;
    c.include_usage = sel & 1;
    struct gw_sse_parser sp;
    int ndjson = (sel >> 5) & 1;
    gw_sse_init(&sp, a, ndjson);
    struct fuzz_stream fs = {&c, out};
    size_t step = 1 + (sel % 17);
    for (size_t i = 0; i < len; i += step)
        gw_sse_feed(&sp, in + i, len - i < step ? len - i : step, frame_cb, &fs);
    gw_sse_finish(&sp, frame_cb, &fs);
    gw_llm_stream_end(&c, out);

    /* 3. the input as a client request. */
    cJSON *body = cJSON_ParseWithLength(in, len);
    if (body) {
        struct gw_llm_upstream up;
        gw_llm_call_init(&c, a, p, route, &o, "m");
        gw_llm_build(&c, body, &up, &err);
        cJSON_Delete(body);
    }
    evbuffer_free(out);
    gw_arena_free(a);
    return 0;
}
