/*
 * Stream framing and stream translation: the SSE / NDJSON parser against
 * Kong's chunk-format fixtures split at every byte, OpenAI pass-through
 * (usage recorded, the extra usage chunk dropped unless asked for),
 * Anthropic events and Ollama lines translated to OpenAI chunks.
 */
#include "test_llm_util.h"

/* Feeds s to a fresh parser in pieces of step bytes; returns events seen. */
static void parse_in_steps(struct gw_arena *a, int ndjson, const char *s, size_t len, size_t step,
                           struct collected *out)
{
    struct gw_sse_parser p;
    gw_sse_init(&p, a, ndjson);
    for (size_t i = 0; i < len; i += step)
        gw_sse_feed(&p, s + i, len - i < step ? len - i : step, collect_cb, out);
    gw_sse_finish(&p, collect_cb, out);
}

/* Every split of the fixture gives the events Kong expects, plus a final
 * "[DONE]" event when extra_done (Kong's framer swallows it; our
 * translators need it to end the stream). */
static void check_chunk_format(const char *dir, int ndjson, int extra_done)
{
    struct gw_arena *a = gw_arena_new(0);
    char rel[256];
    size_t len = 0;
    snprintf(rel, sizeof(rel), "unit/streaming-chunk-formats/%s/input.bin", dir);
    char *in = fixture_text(rel, &len);
    snprintf(rel, sizeof(rel), "unit/streaming-chunk-formats/%s/expected-output.json", dir);
    cJSON *want = fixture_json(rel);
    CHECK(in && want);
    if (!in || !want) return;
    int all_ok = 1;
    size_t steps[] = {0, 1, 2, 3, 7, 64};
    for (size_t si = 0; si < sizeof(steps) / sizeof(steps[0]); si++) {
        struct collected got = {0};
        parse_in_steps(a, ndjson, in, len, steps[si] ? steps[si] : len, &got);
        if (got.n != (size_t)cJSON_GetArraySize(want) + (size_t)extra_done) {
            fprintf(stderr, "%s step %zu: %zu events\n", dir, steps[si], got.n);
            all_ok = 0;
        }
        if (extra_done && (got.n == 0 || strcmp(got.v[got.n - 1], "[DONE]") != 0)) all_ok = 0;
        for (size_t i = 0; i + (size_t)extra_done < got.n; i++) {
            const char *w = gw_json_str(cJSON_GetArrayItem(want, (int)i), "data");
            if (!w || strcmp(w, got.v[i]) != 0) {
                fprintf(stderr, "%s step %zu event %zu: %s\n", dir, steps[si], i, got.v[i]);
                all_ok = 0;
            }
        }
        collected_free(&got);
    }
    /* Every two-piece split. */
    for (size_t cut = 1; cut < len; cut++) {
        struct collected got = {0};
        struct gw_sse_parser p;
        gw_sse_init(&p, a, ndjson);
        gw_sse_feed(&p, in, cut, collect_cb, &got);
        gw_sse_feed(&p, in + cut, len - cut, collect_cb, &got);
        gw_sse_finish(&p, collect_cb, &got);
        if (got.n != (size_t)cJSON_GetArraySize(want) + (size_t)extra_done) all_ok = 0;
        for (size_t i = 0; i + (size_t)extra_done < got.n && all_ok; i++)
            if (strcmp(gw_json_str(cJSON_GetArrayItem(want, (int)i), "data"), got.v[i]) != 0)
                all_ok = 0;
        collected_free(&got);
    }
    CHECK(all_ok);
    cJSON_Delete(want);
    free(in);
    gw_arena_free(a);
}

static void test_sse_parser(void)
{
    /* text-event-stream: OpenAI frames with a final data: [DONE] lacking
     * its blank line; complete-json: NDJSON with \r\n. */
    check_chunk_format("text-event-stream", 0, 1);
    check_chunk_format("complete-json", 1, 0);

    struct gw_arena *a = gw_arena_new(0);
    /* Multi-line data, comments, event names, CR-only and CRLF endings. */
    const char *s = ": keepalive\r\nevent: content_block_delta\rdata: a\r\ndata: b\n\n"
                    "data: x\r\rid: 7\nretry: 10\nevent: ping\ndata:{}\n\n";
    for (size_t step = 1; step <= strlen(s); step++) {
        struct collected g = {0};
        struct gw_sse_parser p;
        gw_sse_init(&p, a, 0);
        for (size_t i = 0; i < strlen(s); i += step) {
            size_t k = strlen(s) - i < step ? strlen(s) - i : step;
            gw_sse_feed(&p, s + i, k, collect_cb, &g);
        }
        gw_sse_finish(&p, collect_cb, &g);
        int ok = g.n == 3 && strcmp(g.v[0], "a\nb") == 0 && strcmp(g.v[1], "x") == 0 &&
                 strcmp(g.v[2], "{}") == 0;
        if (!ok) fprintf(stderr, "step %zu: %zu events\n", step, g.n);
        CHECK(ok);
        collected_free(&g);
    }

    /* A frame larger than the limit is an error, not unbounded memory. */
    struct gw_sse_parser p;
    gw_sse_init(&p, a, 0);
    p.max_size = 16;
    struct collected g = {0};
    CHECK_INT(gw_sse_feed(&p, "data: 0123456789abcdefghij", 26, collect_cb, &g), -1);
    gw_arena_free(a);
}

/* Event names reach the callback. */
static int name_cb(void *arg, const char *event, const char *data, size_t len)
{
    char *out = arg;
    strcat(out, event ? event : "-");
    strcat(out, "|");
    (void)data;
    (void)len;
    return 0;
}

static void test_sse_event_names(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_sse_parser p;
    gw_sse_init(&p, a, 0);
    char names[128] = "";
    const char *s = "event: message_start\ndata: {}\n\ndata: {}\n\nevent: ping\ndata: {}\n\n";
    gw_sse_feed(&p, s, strlen(s), name_cb, names);
    CHECK_STR(names, "message_start|-|ping|");
    gw_arena_free(a);
}

/* Joins the content deltas / tool-call pieces of an OpenAI chunk stream. */
struct assembled {
    int chunks, role_first, done_last, usage_chunks;
    char content[1024];
    char tool_id[2][64], tool_name[2][64], tool_args[2][256];
    char finish[32];
    long prompt, completion, total, cached;
    int ids_consistent;
};

static void assemble(struct collected *ev, struct assembled *r)
{
    memset(r, 0, sizeof(*r));
    r->cached = -1;
    r->ids_consistent = 1;
    const char *first_id = NULL;
    char idbuf[128] = "";
    for (size_t i = 0; i < ev->n; i++) {
        if (strcmp(ev->v[i], "[DONE]") == 0) {
            r->done_last = i == ev->n - 1;
            continue;
        }
        cJSON *j = cJSON_Parse(ev->v[i]);
        if (!j) continue;
        r->chunks++;
        const char *id = gw_json_str(j, "id");
        if (id && !first_id) {
            snprintf(idbuf, sizeof(idbuf), "%s", id);
            first_id = idbuf;
        } else if (!id || strcmp(id, first_id) != 0) {
            r->ids_consistent = 0;
        }
        cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        cJSON *d = cJSON_GetObjectItem(ch, "delta");
        if (i == 0) r->role_first = gw_json_str(d, "role") != NULL;
        const char *t = gw_json_str(d, "content");
        if (t) strncat(r->content, t, sizeof(r->content) - strlen(r->content) - 1);
        cJSON *tc;
        cJSON_ArrayForEach(tc, cJSON_GetObjectItem(d, "tool_calls"))
        {
            double idx = -1;
            gw_json_num(tc, "index", &idx);
            if (idx < 0 || idx > 1) continue;
            int k = (int)idx;
            const char *tid = gw_json_str(tc, "id");
            if (tid) snprintf(r->tool_id[k], sizeof(r->tool_id[k]), "%s", tid);
            cJSON *f = cJSON_GetObjectItem(tc, "function");
            const char *n = gw_json_str(f, "name");
            if (n) snprintf(r->tool_name[k], sizeof(r->tool_name[k]), "%s", n);
            const char *args = gw_json_str(f, "arguments");
            if (args)
                strncat(r->tool_args[k], args,
                        sizeof(r->tool_args[k]) - strlen(r->tool_args[k]) - 1);
        }
        const char *fr = gw_json_str(ch, "finish_reason");
        if (fr) snprintf(r->finish, sizeof(r->finish), "%s", fr);
        cJSON *u = cJSON_GetObjectItem(j, "usage");
        if (cJSON_IsObject(u)) {
            r->usage_chunks++;
            double v;
            if (gw_json_num(u, "prompt_tokens", &v)) r->prompt = (long)v;
            if (gw_json_num(u, "completion_tokens", &v)) r->completion = (long)v;
            if (gw_json_num(u, "total_tokens", &v)) r->total = (long)v;
            if (gw_json_num(cJSON_GetObjectItem(u, "prompt_tokens_details"), "cached_tokens", &v))
                r->cached = (long)v;
            if (cJSON_GetArraySize(cJSON_GetObjectItem(j, "choices")) != 0) r->usage_chunks += 100;
        }
        cJSON_Delete(j);
    }
}

/* An Anthropic Messages stream as documented: text, then two tool_use
 * blocks whose input arrives as partial JSON, ping and a cache read. */
static const char anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-sonnet-20241022\","
    "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,"
    "\"cache_read_input_tokens\":30,\"output_tokens\":2}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Okay, let's\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\" add.\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_01T1\",\"name\":\"add\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"a\\\": 2\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\", \\\"b\\\": 12}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_01T2\",\"name\":\"multiply\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"a\\\": 14, \\\"b\\\": 10}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static void test_anthropic_stream(void)
{
    struct gw_llm_options o = {0};
    size_t len = strlen(anthropic_stream);
    char *reference = NULL;
    int same = 1;
    for (int include_usage = 0; include_usage <= 1; include_usage++) {
        size_t steps[] = {0, 1, 5, 13, 100};
        for (size_t si = 0; si < sizeof(steps) / sizeof(steps[0]); si++) {
            struct gw_arena *a = gw_arena_new(0);
            struct gw_llm_call c;
            gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, &o,
                             "claude-3-5-sonnet-20241022");
            c.stream = 1;
            c.include_usage = include_usage;
            c.created = 1700000000; /* splits are compared byte for byte */
            struct evbuffer *out = evbuffer_new();
            CHECK_INT(run_stream(&c, 0, anthropic_stream, len, steps[si], out), 0);
            struct collected ev = {0};
            collect_sse(a, out, &ev);
            struct assembled r;
            assemble(&ev, &r);
            if (si == 0) {
                CHECK(r.role_first);
                CHECK(r.done_last);
                CHECK(r.ids_consistent);
                CHECK_STR(r.content, "Okay, let's add.");
                CHECK_STR(r.tool_id[0], "toolu_01T1");
                CHECK_STR(r.tool_name[0], "add");
                CHECK_STR(r.tool_args[0], "{\"a\": 2, \"b\": 12}");
                CHECK_STR(r.tool_id[1], "toolu_01T2");
                CHECK_STR(r.tool_name[1], "multiply");
                CHECK_STR(r.tool_args[1], "{\"a\": 14, \"b\": 10}");
                CHECK_STR(r.finish, "tool_calls");
                CHECK_INT(r.usage_chunks, include_usage ? 1 : 0);
                if (include_usage) {
                    CHECK_INT(r.prompt, 502);
                    CHECK_INT(r.completion, 89);
                    CHECK_INT(r.total, 591);
                    CHECK_INT(r.cached, 30);
                }
                CHECK_INT(c.usage.prompt, 502);
                CHECK_INT(c.usage.completion, 89);
                CHECK_STR(c.response_model, "claude-3-5-sonnet-20241022");
            }
            /* The output does not depend on how the input was split. */
            size_t n = evbuffer_get_length(out);
            char *s = strndup((char *)evbuffer_pullup(out, (ssize_t)n), n);
            if (si == 0) {
                free(reference);
                reference = s;
            } else {
                if (strcmp(reference, s) != 0) same = 0;
                free(s);
            }
            collected_free(&ev);
            evbuffer_free(out);
            gw_arena_free(a);
        }
    }
    CHECK(same);
    free(reference);

    /* An error event ends the stream with an OpenAI error; a stream cut
     * before message_stop gets an error event and [DONE]. */
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, &o, "claude");
    struct evbuffer *out = evbuffer_new();
    const char *err_stream =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n"
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
        "\"message\":\"Overloaded\"}}\n\n";
    CHECK_INT(run_stream(&c, 0, err_stream, strlen(err_stream), 0, out), -1);
    struct collected ev = {0};
    collect_sse(a, out, &ev);
    CHECK(ev.n >= 2);
    CHECK(ev.n >= 2 && strstr(ev.v[ev.n - 2], "Overloaded") != NULL);
    CHECK(ev.n >= 1 && strcmp(ev.v[ev.n - 1], "[DONE]") == 0);
    collected_free(&ev);
    evbuffer_drain(out, evbuffer_get_length(out));

    gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, &o, "claude");
    CHECK_INT(run_stream(&c, 0, anthropic_stream, 600, 0, out), -1);
    collect_sse(a, out, &ev);
    CHECK(ev.n >= 2 && strstr(ev.v[ev.n - 2], "\"error\"") != NULL);
    CHECK(ev.n >= 1 && strcmp(ev.v[ev.n - 1], "[DONE]") == 0);
    collected_free(&ev);
    evbuffer_free(out);
    gw_arena_free(a);
}

/* OpenAI-format upstream: frames pass through; usage is recorded; the
 * usage-only chunk reaches the client only when it asked for it. */
static void test_openai_passthrough(void)
{
    size_t flen;
    char *frames = fixture_text("unit/real-stream-frames/openai/llm-v1-chat.txt", &flen);
    CHECK(frames != NULL);
    if (!frames) return;
    struct gw_llm_options o = {0};
    for (int include_usage = 0; include_usage <= 1; include_usage++) {
        struct gw_arena *a = gw_arena_new(0);
        struct evbuffer *body = evbuffer_new();
        evbuffer_add(body, frames, flen);
        evbuffer_add_printf(body,
                            "\n\ndata: {\"id\":\"chatcmpl-1\",\"object\":"
                            "\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4-0613\","
                            "\"choices\":[],\"usage\":{\"prompt_tokens\":11,"
                            "\"completion_tokens\":3,\"total_tokens\":14}}\n\n"
                            "data: [DONE]\n\n");
        size_t n = evbuffer_get_length(body);
        char *s = strndup((char *)evbuffer_pullup(body, (ssize_t)n), n);
        struct gw_llm_call c;
        gw_llm_call_init(&c, a, gw_llm_provider_find("openai"), GW_LLM_CHAT, &o, "gpt-4");
        c.stream = 1;
        c.include_usage = include_usage;
        struct evbuffer *out = evbuffer_new();
        CHECK_INT(run_stream(&c, 0, s, n, 3, out), 0);
        struct collected ev = {0};
        collect_sse(a, out, &ev);
        CHECK_INT(ev.n, include_usage ? 3 : 2);
        /* The content frame is forwarded byte for byte. */
        const char *frame_data = frames + 6;
        size_t frame_len = strcspn(frame_data, "\r\n");
        CHECK(ev.n > 0 && strlen(ev.v[0]) == frame_len &&
              memcmp(ev.v[0], frame_data, frame_len) == 0);
        CHECK(ev.n > 0 && strcmp(ev.v[ev.n - 1], "[DONE]") == 0);
        CHECK_INT(c.usage.prompt, 11);
        CHECK_INT(c.usage.total, 14);
        CHECK_STR(c.response_model, "gpt-4-0613");
        collected_free(&ev);
        free(s);
        evbuffer_free(out);
        evbuffer_free(body);
        gw_arena_free(a);
    }
    free(frames);
}

/* Ollama NDJSON -> OpenAI chunks, with a tool call and usage. */
static void test_ollama_stream(void)
{
    const char *lines =
        "{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\","
        "\"content\":\"The\"},\"done\":false}\r\n"
        "{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\","
        "\"content\":\" answer\"},\"done\":false}\n"
        "{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\","
        "\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"add\",\"arguments\":"
        "{\"a\":1}}}]},\"done\":false}\n"
        "{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\","
        "\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":26,"
        "\"eval_count\":7}\n";
    struct gw_llm_options o = {0};
    o.llama2_format = GW_LLM_FMT_OLLAMA;
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("llama2"), GW_LLM_CHAT, &o, "llama3");
    c.stream = 1;
    c.include_usage = 1;
    struct evbuffer *out = evbuffer_new();
    CHECK_INT(run_stream(&c, 1, lines, strlen(lines), 4, out), 0);
    struct collected ev = {0};
    collect_sse(a, out, &ev);
    struct assembled r;
    assemble(&ev, &r);
    CHECK(r.role_first);
    CHECK(r.done_last);
    CHECK_STR(r.content, "The answer");
    CHECK_STR(r.tool_name[0], "add");
    CHECK_STR(r.tool_args[0], "{\"a\":1}");
    CHECK_STR(r.finish, "tool_calls");
    CHECK_INT(r.usage_chunks, 1);
    CHECK_INT(r.total, 33);
    collected_free(&ev);
    evbuffer_free(out);
    gw_arena_free(a);
}

/* A stream request answered with one JSON reply becomes the chunk
 * sequence a stream carries: content+tool_calls, finish, usage, [DONE]. */
static void test_reply_to_chunks(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_options none = {0};
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("openai"), GW_LLM_CHAT, &none, "m");
    c.stream = 1;
    c.include_usage = 1;
    cJSON *reply = cJSON_Parse(
        "{\"id\":\"r1\",\"created\":7,\"model\":\"served\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"hi\",\"tool_calls\":[{\"id\":\"t\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":2,"
        "\"completion_tokens\":3}}");
    struct evbuffer *out = evbuffer_new();
    gw_llm_reply_to_chunks(&c, reply, out);
    struct collected ev = {0};
    collect_sse(a, out, &ev);
    CHECK_INT((int)ev.n, 4);
    cJSON *j = ev.n > 0 ? cJSON_Parse(ev.v[0]) : NULL;
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *d = cJSON_GetObjectItem(ch, "delta");
    CHECK_STR(gw_json_str(j, "id"), "r1");
    CHECK_STR(gw_json_str(j, "object"), "chat.completion.chunk");
    CHECK_STR(gw_json_str(j, "model"), "served");
    CHECK_STR(gw_json_str(d, "role"), "assistant");
    CHECK_STR(gw_json_str(d, "content"), "hi");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(ch, "finish_reason")));
    double v = -1;
    CHECK(gw_json_num(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "tool_calls"), 0), "index", &v) &&
          v == 0);
    cJSON_Delete(j);
    j = ev.n > 1 ? cJSON_Parse(ev.v[1]) : NULL;
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    CHECK_STR(gw_json_str(ch, "finish_reason"), "tool_calls");
    cJSON_Delete(j);
    j = ev.n > 2 ? cJSON_Parse(ev.v[2]) : NULL;
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "choices")), 0);
    CHECK(gw_json_num(cJSON_GetObjectItem(j, "usage"), "total_tokens", &v) && v == 5);
    cJSON_Delete(j);
    CHECK(ev.n > 3 && strcmp(ev.v[3], "[DONE]") == 0);
    CHECK_INT(gw_llm_stream_end(&c, out), 0);
    collected_free(&ev);
    evbuffer_free(out);
    cJSON_Delete(reply);
    gw_arena_free(a);
}

/* A TGI stream as text-generation-inference sends it (`data:` without a
 * space, one event per token, a special </s> token, details on the last
 * event), split at every byte and at every two-piece cut. */
static const char tgi_stream[] =
    "data:{\"index\":1,\"token\":{\"id\":22557,\"text\":\" Hello\",\"logprob\":-0.1,"
    "\"special\":false},\"generated_text\":null,\"details\":null}\n\n"
    "data:{\"index\":2,\"token\":{\"id\":28808,\"text\":\", wor\",\"logprob\":-0.2,"
    "\"special\":false},\"generated_text\":null,\"details\":null}\r\n\r\n"
    "data:{\"index\":3,\"token\":{\"id\":1526,\"text\":\"ld\\n\",\"logprob\":-0.3,"
    "\"special\":false},\"generated_text\":null,\"details\":null}\n\n"
    "data:{\"index\":4,\"token\":{\"id\":2,\"text\":\"</s>\",\"logprob\":-0.01,"
    "\"special\":true},\"generated_text\":\"Hello, world\\n\",\"details\":{\"finish_reason\":"
    "\"eos_token\",\"generated_tokens\":4,\"seed\":null,\"input_length\":12}}\n\n";

/* Runs a llama2 raw stream with a fixed id and time, so that outputs of
 * different splits compare byte for byte. Returns the output (malloc). */
static char *raw_stream_run(enum gw_llm_route route, int include_usage, const char *body,
                            size_t len, size_t cut, size_t step, int *rc, struct gw_llm_usage *u)
{
    struct gw_llm_options o = {0};
    o.llama2_format = GW_LLM_FMT_RAW;
    o.upstream_url = "http://tgi/generate_stream";
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("llama2"), route, &o, "llama-2-7b-chat");
    c.stream = 1;
    c.include_usage = include_usage;
    c.created = 1700000000;
    c.chunk_id = "chatcmpl-fixed";
    c.sent_prompt = "<s>[INST] hi [/INST]";
    struct evbuffer *out = evbuffer_new();
    if (cut) {
        /* Two pieces: the parser state carries over between the feeds. */
        struct gw_sse_parser p;
        gw_sse_init(&p, a, 0);
        struct stream_ctx sc = {&c, out};
        if (gw_sse_feed(&p, body, cut, stream_cb, &sc) == 0)
            gw_sse_feed(&p, body + cut, len - cut, stream_cb, &sc);
        gw_sse_finish(&p, stream_cb, &sc);
        *rc = gw_llm_stream_end(&c, out);
    } else {
        *rc = run_stream(&c, 0, body, len, step, out);
    }
    if (u) *u = c.usage;
    size_t n = evbuffer_get_length(out);
    char *s = strndup((char *)evbuffer_pullup(out, (ssize_t)n), n);
    evbuffer_free(out);
    gw_arena_free(a);
    return s;
}

static void test_llama2_raw_stream(void)
{
    size_t len = strlen(tgi_stream);
    for (int include_usage = 0; include_usage <= 1; include_usage++) {
        int rc;
        struct gw_llm_usage u;
        char *ref = raw_stream_run(GW_LLM_CHAT, include_usage, tgi_stream, len, 0, 0, &rc, &u);
        CHECK_INT(rc, 0);
        struct gw_arena *a = gw_arena_new(0);
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, ref, strlen(ref));
        struct collected ev = {0};
        collect_sse(a, b, &ev);
        struct assembled r;
        assemble(&ev, &r);
        CHECK(r.role_first);
        CHECK(r.done_last);
        CHECK(r.ids_consistent);
        /* Leading blank dropped, special token not text, newline kept. */
        CHECK_STR(r.content, "Hello, world\n");
        CHECK_STR(r.finish, "stop");
        /* role, 3 deltas, finish (+ usage). */
        CHECK_INT(r.chunks, include_usage ? 6 : 5);
        CHECK_INT(r.usage_chunks, include_usage ? 1 : 0);
        if (include_usage) {
            CHECK_INT(r.prompt, 12);
            CHECK_INT(r.completion, 4);
            CHECK_INT(r.total, 16);
        }
        CHECK_INT(u.prompt, 12);
        CHECK_INT(u.completion, 4);
        CHECK_INT(u.total, 16);
        collected_free(&ev);
        evbuffer_free(b);
        gw_arena_free(a);

        /* Every step size and every two-piece cut give the same bytes. */
        int same = 1;
        for (size_t step = 1; step <= len; step++) {
            char *s =
                raw_stream_run(GW_LLM_CHAT, include_usage, tgi_stream, len, 0, step, &rc, NULL);
            if (rc != 0 || strcmp(s, ref) != 0) {
                if (same) fprintf(stderr, "raw stream step %zu differs:\n%s\n", step, s);
                same = 0;
            }
            free(s);
        }
        for (size_t cut = 1; cut < len; cut++) {
            char *s =
                raw_stream_run(GW_LLM_CHAT, include_usage, tgi_stream, len, cut, 0, &rc, NULL);
            if (rc != 0 || strcmp(s, ref) != 0) {
                if (same) fprintf(stderr, "raw stream cut %zu differs:\n%s\n", cut, s);
                same = 0;
            }
            free(s);
        }
        CHECK(same);
        free(ref);
    }

    /* Completions: text_completion chunks with choices[].text; finish
     * "length" from details; without details the token events are counted. */
    const char *gen =
        "data: "
        "{\"token\":{\"id\":1,\"text\":\"One\",\"special\":false},\"generated_text\":null}\n\n"
        "data: {\"token\":{\"id\":2,\"text\":\" two\",\"special\":false},"
        "\"generated_text\":\"One two\",\"details\":{\"finish_reason\":\"length\","
        "\"generated_tokens\":2}}\n\n";
    int rc;
    struct gw_llm_usage u;
    char *s = raw_stream_run(GW_LLM_COMPLETIONS, 1, gen, strlen(gen), 0, 1, &rc, &u);
    CHECK_INT(rc, 0);
    struct gw_arena *a = gw_arena_new(0);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, s, strlen(s));
    struct collected ev = {0};
    collect_sse(a, b, &ev);
    char text[64] = "", finish[16] = "";
    int objects_ok = 1, usage_seen = 0;
    for (size_t i = 0; i + 1 < ev.n; i++) {
        cJSON *j = cJSON_Parse(ev.v[i]);
        const char *obj = gw_json_str(j, "object");
        if (!obj || strcmp(obj, "text_completion") != 0) objects_ok = 0;
        cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        const char *t = gw_json_str(ch, "text");
        if (t) strncat(text, t, sizeof(text) - strlen(text) - 1);
        const char *fr = gw_json_str(ch, "finish_reason");
        if (fr) snprintf(finish, sizeof(finish), "%s", fr);
        double v;
        if (gw_json_num(cJSON_GetObjectItem(j, "usage"), "completion_tokens", &v) && v == 2)
            usage_seen = 1;
        cJSON_Delete(j);
    }
    CHECK(objects_ok);
    CHECK_STR(text, "One two");
    CHECK_STR(finish, "length");
    CHECK(usage_seen);
    CHECK(ev.n > 0 && strcmp(ev.v[ev.n - 1], "[DONE]") == 0);
    collected_free(&ev);
    free(s);

    const char *nodetails =
        "data: {\"token\":{\"text\":\"a\"},\"generated_text\":null}\n\n"
        "data: {\"token\":{\"text\":\"b\"},\"generated_text\":null}\n\n"
        "data: {\"token\":{\"text\":\"c\"},\"generated_text\":\"abc\",\"details\":null}\n\n";
    free(raw_stream_run(GW_LLM_CHAT, 0, nodetails, strlen(nodetails), 0, 0, &rc, &u));
    CHECK_INT(rc, 0);
    CHECK_INT(u.completion, 3);
    CHECK_INT(u.prompt, 0);
    CHECK_INT(u.total, 3);

    /* A server sending only the final text: the echoed prompt is dropped. */
    const char *whole = "data: {\"generated_text\":\"<s>[INST] hi [/INST] Whole answer.\"}\n\n";
    s = raw_stream_run(GW_LLM_CHAT, 0, whole, strlen(whole), 0, 0, &rc, NULL);
    CHECK_INT(rc, 0);
    evbuffer_drain(b, evbuffer_get_length(b));
    evbuffer_add(b, s, strlen(s));
    collect_sse(a, b, &ev);
    struct assembled r;
    assemble(&ev, &r);
    CHECK_STR(r.content, "Whole answer.");
    CHECK_STR(r.finish, "stop");
    CHECK(r.done_last);
    collected_free(&ev);
    free(s);

    /* TGI's error event mid-stream; a stream cut before its last event;
     * a frame that is not JSON. Each ends in an error event and [DONE]. */
    const char *bad[][2] = {
        {"data: {\"token\":{\"text\":\"x\"},\"generated_text\":null}\n\n"
         "data: {\"error\":\"Request failed during generation: out of memory\","
         "\"error_type\":\"generation\"}\n\n",
         "out of memory"},
        {"data: {\"token\":{\"text\":\"x\"},\"generated_text\":null}\n\n", "ended before"},
        {"data: {\"token\":{\"text\":\"x\"},\"generated_text\":null}\n\ndata: <html>\n\n",
         "not JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = raw_stream_run(GW_LLM_CHAT, 0, bad[i][0], strlen(bad[i][0]), 0, 0, &rc, NULL);
        CHECK_INT(rc, -1);
        evbuffer_drain(b, evbuffer_get_length(b));
        evbuffer_add(b, s, strlen(s));
        collect_sse(a, b, &ev);
        CHECK(ev.n >= 2 && strstr(ev.v[ev.n - 2], "\"error\"") != NULL &&
              strstr(ev.v[ev.n - 2], bad[i][1]) != NULL);
        CHECK(ev.n >= 1 && strcmp(ev.v[ev.n - 1], "[DONE]") == 0);
        collected_free(&ev);
        free(s);
    }
    evbuffer_free(b);
    gw_arena_free(a);
}

/* response_format on an Anthropic stream: the json_response tool's input
 * arrives as content deltas (no tool_calls), finish_reason stop; a client
 * tool called in the same stream keeps tool-call index 0. */
static void test_anthropic_json_stream(void)
{
    const char *events =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_js\",\"model\":\"claude\","
        "\"usage\":{\"input_tokens\":30,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
        "\"tool_use\",\"id\":\"toolu_j\",\"name\":\"json_response\",\"input\":{}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"{\\\"name\\\": \\\"A\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"nn\\\"}\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"
        "\"usage\":{\"output_tokens\":9}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    struct gw_llm_options o = {0};
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, &o, "claude");
    cJSON *body = cJSON_Parse("{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
                              "\"x\"}],\"response_format\":{\"type\":\"json_object\"}}");
    struct gw_llm_upstream up;
    const char *err = NULL;
    CHECK_INT(gw_llm_build(&c, body, &up, &err), 0);
    cJSON_Delete(body);
    struct evbuffer *out = evbuffer_new();
    CHECK_INT(run_stream(&c, 0, events, strlen(events), 7, out), 0);
    struct collected ev = {0};
    collect_sse(a, out, &ev);
    struct assembled r;
    assemble(&ev, &r);
    CHECK(r.role_first);
    CHECK(r.done_last);
    CHECK_STR(r.content, "{\"name\": \"Ann\"}");
    CHECK_STR(r.tool_name[0], "");
    CHECK_INT(c.n_tool_calls, 0);
    CHECK_STR(r.finish, "stop");
    CHECK_INT(c.usage.completion, 9);
    collected_free(&ev);

    /* Same events without response_format: a tool call, finish tool_calls. */
    gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, &o, "claude");
    evbuffer_drain(out, evbuffer_get_length(out));
    CHECK_INT(run_stream(&c, 0, events, strlen(events), 0, out), 0);
    collect_sse(a, out, &ev);
    assemble(&ev, &r);
    CHECK_STR(r.content, "");
    CHECK_STR(r.tool_name[0], "json_response");
    CHECK_STR(r.finish, "tool_calls");
    collected_free(&ev);
    evbuffer_free(out);
    gw_arena_free(a);
}

/* Text deltas are written without a cJSON tree (the hot path of a stream):
 * the bytes must be exactly what the tree would print, escapes included,
 * and a model learnt mid-stream must show in the next chunk. */
static void test_text_chunk_fast_path(void)
{
    const char *texts[] = {"Hello",
                           "quote \" back \\ slash",
                           "nl\n tab\t cr\r bell\a \x01\x1f",
                           "unicode \xc3\xa9 \xe2\x9c\x93",
                           "</script>",
                           NULL};
    for (int i = 0; texts[i]; i++) {
        struct gw_arena *a = gw_arena_new(4096);
        struct gw_llm_call c;
        memset(&c, 0, sizeof(c));
        c.arena = a;
        c.route = GW_LLM_CHAT;
        c.model = "claude-\"x\"";
        c.created = 1732540000;
        if (i == 4) c.response_model = "claude-3-5-sonnet-20241022"; /* learnt from the stream */
        struct evbuffer *fast = evbuffer_new(), *tree = evbuffer_new();
        gw_llm_emit_text(&c, fast, texts[i]);
        cJSON *delta;
        cJSON *ch = gw_llm_chunk_new(&c, &delta, NULL);
        cJSON_AddStringToObject(delta, "content", texts[i]);
        gw_llm_emit_json(tree, ch);
        cJSON_Delete(ch);
        size_t n = evbuffer_get_length(fast);
        CHECK_INT((long)n, (long)evbuffer_get_length(tree));
        CHECK(n == evbuffer_get_length(tree) &&
              memcmp(evbuffer_pullup(fast, -1), evbuffer_pullup(tree, -1), n) == 0);
        evbuffer_free(fast);
        evbuffer_free(tree);
        gw_arena_free(a);
    }
    /* The model changes mid-stream: the cached prefix follows. */
    struct gw_arena *a = gw_arena_new(4096);
    struct gw_llm_call c;
    memset(&c, 0, sizeof(c));
    c.arena = a;
    c.model = "asked";
    c.created = 1;
    struct evbuffer *out = evbuffer_new();
    gw_llm_emit_text(&c, out, "one");
    c.response_model = "answered";
    gw_llm_emit_text(&c, out, "two");
    evbuffer_add(out, "", 1);
    const char *all = (const char *)evbuffer_pullup(out, -1);
    CHECK(strstr(all,
                 "\"model\":\"asked\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one\"}") !=
          NULL);
    CHECK(strstr(
              all,
              "\"model\":\"answered\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"two\"}") !=
          NULL);
    evbuffer_free(out);
    gw_arena_free(a);
}

/* The content of the one chunk in out ("data: {...}\n\n"), or NULL. */
static char *chunk_content(struct evbuffer *out)
{
    size_t n = evbuffer_get_length(out);
    char *all = calloc(1, n + 1);
    evbuffer_remove(out, all, n);
    char *res = NULL;
    if (n > 8 && strncmp(all, "data: ", 6) == 0) {
        cJSON *j = cJSON_Parse(all + 6);
        cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "content");
        if (cJSON_IsString(content)) res = strdup(content->valuestring);
        cJSON_Delete(j);
    }
    free(all);
    return res;
}

/* Text deltas in Anthropic's compact form skip the JSON parse and pass the
 * escaped text on as it is; the client must decode the same text as from
 * the full path (here forced by a spaced frame), escapes included. A frame
 * the fast path cannot vouch for goes the full way. */
static void test_anthropic_text_delta_fast_path(void)
{
    const char *texts[] = {"Hello",
                           "quote \\\" back \\\\ slash \\/",
                           "nl\\n tab\\t \\u00e9 \\ud83d\\ude00",
                           "caf\xc3\xa9",
                           "",
                           NULL};
    struct gw_llm_options o = {0};
    for (int i = 0; texts[i]; i++) {
        char compact[512], spaced[512];
        snprintf(compact, sizeof(compact),
                 "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                 "\"text\":\"%s\"}}",
                 texts[i]);
        snprintf(spaced, sizeof(spaced),
                 "{\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": "
                 "\"text_delta\", \"text\": \"%s\"}}",
                 texts[i]);
        char *got[2];
        const char *frames[2] = {compact, spaced};
        for (int k = 0; k < 2; k++) {
            struct gw_arena *a = gw_arena_new(0);
            struct gw_llm_call c;
            gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, &o, "claude");
            c.stream = 1;
            c.created = 1700000000;
            c.role_sent = 1;
            struct evbuffer *out = evbuffer_new();
            CHECK_INT(c.provider->stream_frame(&c, "content_block_delta", frames[k],
                                               strlen(frames[k]), out),
                      0);
            got[k] = chunk_content(out);
            evbuffer_free(out);
            gw_arena_free(a);
        }
        if (texts[i][0]) {
            CHECK(got[0] && got[1] && strcmp(got[0], got[1]) == 0);
        } else {
            CHECK(!got[0] && !got[1]); /* an empty delta sends nothing either way */
        }
        free(got[0]);
        free(got[1]);
    }
    /* A bad escape is not passed on: the frame is refused as not JSON. */
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, &o, "claude");
    c.stream = 1;
    c.role_sent = 1;
    struct evbuffer *out = evbuffer_new();
    const char *bad =
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
        "\"text\":\"a\\x\"}}";
    CHECK(c.provider->stream_frame(&c, "content_block_delta", bad, strlen(bad), out) < 0);
    evbuffer_add(out, "", 1);
    CHECK(strstr((const char *)evbuffer_pullup(out, -1), "\"content\":") == NULL);
    evbuffer_free(out);
    gw_arena_free(a);
}

int main(void)
{
    test_sse_parser();
    test_sse_event_names();
    test_anthropic_stream();
    test_openai_passthrough();
    test_ollama_stream();
    test_reply_to_chunks();
    test_llama2_raw_stream();
    test_anthropic_json_stream();
    test_text_chunk_fast_path();
    test_anthropic_text_delta_fast_path();
    return gw_test_done("test_llm_stream");
}
