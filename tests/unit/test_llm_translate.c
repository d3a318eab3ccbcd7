/*
 * Request and reply translation, driven by Kong's ai-proxy fixtures
 * (../shared/conformance/kong-ai-proxy/unit). Where we follow Kong the
 * comparison is semantic (both sides parsed); where we deliberately differ
 * (docs/providers.md) the difference is asserted explicitly.
 */
#include "test_llm_util.h"

/* The options Kong's unit tests configure for every provider. */
static struct gw_llm_options kong_options(void)
{
    struct gw_llm_options o = {0};
    o.max_tokens = (struct gw_opt_num){1, 512};
    o.temperature = (struct gw_opt_num){1, 0.5};
    return o;
}

static cJSON *build(const char *provider, enum gw_llm_route route, struct gw_llm_options *o,
                    const char *model, const cJSON *body, struct gw_llm_upstream *up,
                    struct gw_arena *a)
{
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find(provider), route, o, model);
    const char *err = NULL;
    if (gw_llm_build(&c, body, up, &err) < 0) {
        fprintf(stderr, "build %s: %s\n", provider, err);
        return NULL;
    }
    return cJSON_Parse(up->body);
}

static void test_requests(void)
{
    struct gw_arena *a = gw_arena_new(0);
    cJSON *chat = fixture_json("unit/requests/llm-v1-chat.json");
    cJSON *comp = fixture_json("unit/requests/llm-v1-completions.json");
    struct gw_llm_upstream up;
    struct {
        const char *provider, *model, *fixture;
        enum gw_llm_route route;
        int fmt; /* llama2 / mistral format */
    } same[] = {
        {"openai", "gpt-4", "openai/llm-v1-chat.json", GW_LLM_CHAT, 0},
        {"openai", "gpt-3.5-turbo-instruct", "openai/llm-v1-completions.json", GW_LLM_COMPLETIONS,
         0},
        {"anthropic", "claude-2.1", "anthropic/llm-v1-chat.json", GW_LLM_CHAT, 0},
        {"mistral", "mistral-tiny", "mistral/openai/llm-v1-chat.json", GW_LLM_CHAT,
         GW_LLM_FMT_OPENAI},
        {"mistral", "mistral-tiny", "mistral/ollama/llm-v1-chat.json", GW_LLM_CHAT,
         GW_LLM_FMT_OLLAMA},
        {"llama2", "llama2", "llama2/ollama/llm-v1-chat.json", GW_LLM_CHAT, GW_LLM_FMT_OLLAMA},
        {"llama2", "llama2", "llama2/ollama/llm-v1-completions.json", GW_LLM_COMPLETIONS,
         GW_LLM_FMT_OLLAMA},
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        struct gw_llm_options o = kong_options();
        o.mistral_format = o.llama2_format = same[i].fmt;
        o.upstream_url = same[i].fmt == GW_LLM_FMT_OLLAMA ? "http://ollama:11434/api/chat" : NULL;
        cJSON *got = build(same[i].provider, same[i].route, &o, same[i].model,
                           same[i].route == GW_LLM_CHAT ? chat : comp, &up, a);
        char rel[256];
        snprintf(rel, sizeof(rel), "unit/expected-requests/%s", same[i].fixture);
        cJSON *want = fixture_json(rel);
        CHECK(json_same(got, want, rel));
        CHECK_STR(up.method, "POST");
        cJSON_Delete(got);
        cJSON_Delete(want);
    }

    /* Default endpoints and headers. */
    struct gw_llm_options o = kong_options();
    cJSON_Delete(build("openai", GW_LLM_CHAT, &o, "gpt-4", chat, &up, a));
    CHECK_STR(up.url, "https://api.openai.com/v1/chat/completions");
    cJSON_Delete(build("anthropic", GW_LLM_CHAT, &o, "claude-2.1", chat, &up, a));
    CHECK_STR(up.url, "https://api.anthropic.com/v1/messages");
    CHECK_INT(up.n_headers, 1);
    CHECK_STR(up.headers[0][0], "anthropic-version");
    CHECK_STR(up.headers[0][1], "2023-06-01");
    o.upstream_url = "http://127.0.0.1:9999/fake/messages";
    cJSON_Delete(build("anthropic", GW_LLM_CHAT, &o, "claude-2.1", chat, &up, a));
    CHECK_STR(up.url, "http://127.0.0.1:9999/fake/messages");
    o.upstream_url = NULL;
    o.upstream_path = "/proxy/v1/chat";
    cJSON_Delete(build("openai", GW_LLM_CHAT, &o, "gpt-4", chat, &up, a));
    CHECK_STR(up.url, "https://api.openai.com/proxy/v1/chat");

    /* Azure: Kong's fixture has top_p 1 in its config. */
    o = kong_options();
    o.top_p = (struct gw_opt_num){1, 1.0};
    o.azure_instance = "my-inst";
    o.azure_deployment_id = "gpt4-dep";
    cJSON *got = build("azure", GW_LLM_CHAT, &o, "gpt-4", chat, &up, a);
    cJSON *want = fixture_json("unit/expected-requests/azure/llm-v1-chat.json");
    CHECK(json_same(got, want, "azure chat request"));
    CHECK_STR(up.url, "https://my-inst.openai.azure.com/openai/deployments/gpt4-dep/"
                      "chat/completions?api-version=2023-05-15");
    cJSON_Delete(got);
    cJSON_Delete(want);
    /* upstream_path names the operation after the deployment (Kong's
     * azure driver), it does not replace the deployment's path. */
    o.upstream_path = "/chat/completions";
    cJSON_Delete(build("azure", GW_LLM_CHAT, &o, "gpt-4", chat, &up, a));
    CHECK_STR(up.url, "https://my-inst.openai.azure.com/openai/deployments/gpt4-dep/"
                      "chat/completions?api-version=2023-05-15");
    o.upstream_path = NULL;
    got = build("azure", GW_LLM_COMPLETIONS, &o, "gpt-3.5-turbo-instruct", comp, &up, a);
    want = fixture_json("unit/expected-requests/azure/llm-v1-completions.json");
    CHECK(json_same(got, want, "azure completions request"));
    cJSON_Delete(got);
    cJSON_Delete(want);

    /* Deliberate difference: Anthropic's legacy prompt must start with
     * "\n\nHuman:" (Kong sends "Human:"). The rest is as Kong. */
    o = kong_options();
    got = build("anthropic", GW_LLM_COMPLETIONS, &o, "claude-2.1", comp, &up, a);
    want = fixture_json("unit/expected-requests/anthropic/llm-v1-completions.json");
    CHECK_STR(gw_json_str(got, "prompt"),
              "\n\nHuman: Explain why you can't divide by zero?\n\nAssistant:");
    cJSON_DeleteItemFromObject(got, "prompt");
    cJSON_DeleteItemFromObject(want, "prompt");
    CHECK(json_same(got, want, "anthropic completions request"));
    CHECK_STR(up.url, "https://api.anthropic.com/v1/complete");
    cJSON_Delete(got);
    cJSON_Delete(want);

    /* Deliberate difference: llama2 raw uses Llama 2's real chat template,
     * keeping the assistant turns Kong drops. Parameters as Kong. */
    o = kong_options();
    o.top_k = (struct gw_opt_num){1, 40};
    o.top_p = (struct gw_opt_num){1, 1};
    o.llama2_format = GW_LLM_FMT_RAW;
    o.upstream_url = "http://tgi/generate";
    got = build("llama2", GW_LLM_CHAT, &o, "llama2", chat, &up, a);
    want = fixture_json("unit/expected-requests/llama2/raw/llm-v1-chat.json");
    CHECK_STR(gw_json_str(got, "inputs"),
              "<s>[INST] <<SYS>>\nYou are a mathematician.\n<</SYS>>\n\nWhat is 1 + 2? [/INST] "
              "The sum of 1 + 2 is 3. If you have any more math questions or if there's "
              "anything else I can help you with, feel free to ask! </s><s>[INST] Multiply that "
              "by 2 [/INST] Certainly! If you multiply 3 by 2, the result is 6. If you have any "
              "more questions or if there's anything else I can help you with, feel free to "
              "ask! </s><s>[INST] Why can't you divide by zero? [/INST]");
    CHECK(json_same(cJSON_GetObjectItem(got, "parameters"), cJSON_GetObjectItem(want, "parameters"),
                    "llama2 raw parameters"));
    cJSON_Delete(got);
    cJSON_Delete(want);

    cJSON_Delete(chat);
    cJSON_Delete(comp);
    gw_arena_free(a);
}

/* Plugin options win over the client's sampling values; the client's
 * values pass when the plugin sets none. */
static void test_option_precedence(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_upstream up;
    cJSON *body = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                              "\"temperature\":0.9,\"max_tokens\":7,\"top_p\":0.3,"
                              "\"stop\":\"END\",\"model\":\"gpt-4o\"}");
    struct gw_llm_options none = {0};
    cJSON *got = build("anthropic", GW_LLM_CHAT, &none, "claude-x", body, &up, a);
    double v = 0;
    CHECK(gw_json_num(got, "temperature", &v) && v == 0.9);
    CHECK(gw_json_num(got, "max_tokens", &v) && v == 7);
    CHECK(gw_json_num(got, "top_p", &v) && v == 0.3);
    CHECK_STR(cJSON_GetArrayItem(cJSON_GetObjectItem(got, "stop_sequences"), 0)->valuestring,
              "END");
    CHECK_STR(gw_json_str(got, "model"), "claude-x");
    cJSON_Delete(got);

    struct gw_llm_options o = {0};
    o.temperature = (struct gw_opt_num){1, 0};
    o.max_tokens = (struct gw_opt_num){1, 100};
    got = build("openai", GW_LLM_CHAT, &o, "gpt-4", body, &up, a);
    CHECK(gw_json_num(got, "temperature", &v) && v == 0);
    CHECK(gw_json_num(got, "max_tokens", &v) && v == 100);
    CHECK(gw_json_num(got, "top_p", &v) && v == 0.3);
    CHECK_STR(gw_json_str(got, "model"), "gpt-4");
    cJSON_Delete(got);

    /* Anthropic requires max_tokens: our documented default. */
    cJSON_DeleteItemFromObject(body, "max_tokens");
    got = build("anthropic", GW_LLM_CHAT, &none, "claude-x", body, &up, a);
    CHECK(gw_json_num(got, "max_tokens", &v) && v == 4096);
    cJSON_Delete(got);
    /* max_completion_tokens is honoured, and stays that name for OpenAI. */
    cJSON_AddNumberToObject(body, "max_completion_tokens", 33);
    got = build("anthropic", GW_LLM_CHAT, &none, "claude-x", body, &up, a);
    CHECK(gw_json_num(got, "max_tokens", &v) && v == 33);
    cJSON_Delete(got);
    got = build("openai", GW_LLM_CHAT, &o, "gpt-4", body, &up, a);
    CHECK(gw_json_num(got, "max_completion_tokens", &v) && v == 100);
    CHECK(!cJSON_HasObjectItem(got, "max_tokens"));
    cJSON_Delete(got);

    /* Streams always ask OpenAI-format upstreams for usage. */
    cJSON_AddTrueToObject(body, "stream");
    got = build("openai", GW_LLM_CHAT, &o, "gpt-4", body, &up, a);
    CHECK(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(got, "stream_options"), "include_usage")));
    cJSON_Delete(got);

    /* n > 1 cannot be served by Anthropic: a client error. */
    cJSON_AddNumberToObject(body, "n", 2);
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, &none, "claude-x");
    const char *err = NULL;
    CHECK_INT(gw_llm_build(&c, body, &up, &err), -1);
    CHECK(err && strstr(err, "n > 1"));
    cJSON_Delete(body);
    gw_arena_free(a);
}

static void test_anthropic_tools_and_images(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_upstream up;
    struct gw_llm_options o = {0};
    const char *choices[][2] = {
        {"openai/llm-v1-chat/requests/tool_choice_auto.json", "{\"type\":\"auto\"}"},
        {"openai/llm-v1-chat/requests/tool_choice_none.json", "{\"type\":\"none\"}"},
        {"openai/llm-v1-chat/requests/tool_choice_required.json", "{\"type\":\"any\"}"},
        {"openai/llm-v1-chat/requests/tool_choice_object_function.json",
         "{\"type\":\"tool\",\"name\":\"my_function\"}"},
    };
    for (size_t i = 0; i < 4; i++) {
        cJSON *body = fixture_json(choices[i][0]);
        cJSON *got = build("anthropic", GW_LLM_CHAT, &o, "claude-x", body, &up, a);
        cJSON *want = cJSON_Parse(choices[i][1]);
        CHECK(json_same(cJSON_GetObjectItem(got, "tool_choice"), want, choices[i][0]));
        cJSON_Delete(want);
        if (i == 3) {
            /* OpenAI's empty parameters become an object schema. */
            cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "tools"), 0);
            CHECK_STR(gw_json_str(t0, "name"), "my_function");
            CHECK_STR(gw_json_str(cJSON_GetObjectItem(t0, "input_schema"), "type"), "object");
            CHECK_STR(gw_json_str(got, "system"), "You are an AI assistant.");
        }
        if (i == 0) {
            cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "tools"), 0);
            CHECK_STR(gw_json_str(t0, "description"),
                      "Get the current weather in a given location");
            CHECK(cJSON_HasObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(t0, "input_schema"), "properties"),
                "location"));
        }
        cJSON_Delete(got);
        cJSON_Delete(body);
    }

    /* Multimodal: URL source, and data URI -> base64 source. */
    cJSON *body = fixture_json("openai/llm-v1-chat/requests/good_multi_modal.json");
    cJSON *got = build("anthropic", GW_LLM_CHAT, &o, "claude-x", body, &up, a);
    cJSON *msg = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "messages"), 0);
    cJSON *img = cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "content"), 1);
    CHECK_STR(gw_json_str(img, "type"), "image");
    CHECK_STR(gw_json_str(cJSON_GetObjectItem(img, "source"), "type"), "url");
    CHECK(strncmp(gw_json_str(cJSON_GetObjectItem(img, "source"), "url"),
                  "https://upload.wikimedia.org/", 29) == 0);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(got, "messages")), 1);
    cJSON_Delete(got);
    cJSON_Delete(body);
    body = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                       "\"text\":\"what?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
                       "\"data:image/png;base64,iVBORw0KGgo=\"}}]}]}");
    got = build("anthropic", GW_LLM_CHAT, &o, "claude-x", body, &up, a);
    cJSON *src = cJSON_GetObjectItem(
        cJSON_GetArrayItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(got, "messages"), 0),
                                "content"),
            1),
        "source");
    CHECK_STR(gw_json_str(src, "type"), "base64");
    CHECK_STR(gw_json_str(src, "media_type"), "image/png");
    CHECK_STR(gw_json_str(src, "data"), "iVBORw0KGgo=");
    cJSON_Delete(got);
    cJSON_Delete(body);

    /* A tool round trip: assistant tool_calls -> tool_use blocks, two tool
     * results -> one user message of tool_result blocks. */
    body =
        cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"2+12 then *10\"},"
                    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
                    "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"add\","
                    "\"arguments\":\"{\\\"a\\\":2,\\\"b\\\":12}\"}},"
                    "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"multiply\","
                    "\"arguments\":\"{\\\"a\\\":14,\\\"b\\\":10}\"}}]},"
                    "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"14\"},"
                    "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":\"140\"}],"
                    "\"parallel_tool_calls\":false,"
                    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"add\"}}]}");
    got = build("anthropic", GW_LLM_CHAT, &o, "claude-x", body, &up, a);
    cJSON *want = cJSON_Parse(
        "[{\"role\":\"user\",\"content\":\"2+12 then *10\"},"
        "{\"role\":\"assistant\",\"content\":["
        "{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"add\",\"input\":{\"a\":2,\"b\":12}},"
        "{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":\"multiply\","
        "\"input\":{\"a\":14,\"b\":10}}]},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"tool_result\",\"tool_use_id\":\"call_1\",\"content\":\"14\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"call_2\",\"content\":\"140\"}]}]");
    CHECK(json_same(cJSON_GetObjectItem(got, "messages"), want, "anthropic tool round trip"));
    CHECK(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(got, "tool_choice"), "disable_parallel_tool_use")));
    cJSON_Delete(want);
    cJSON_Delete(got);

    /* Arguments that are not a JSON object are the client's error. */
    cJSON *args = cJSON_GetObjectItem(
        cJSON_GetObjectItem(
            cJSON_GetArrayItem(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(body, "messages"), 1),
                                    "tool_calls"),
                0),
            "function"),
        "arguments");
    cJSON_SetValuestring(args, "{broken");
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, &o, "claude-x");
    const char *err = NULL;
    CHECK_INT(gw_llm_build(&c, body, &up, &err), -1);
    CHECK(err != NULL);
    cJSON_Delete(body);
    gw_arena_free(a);
}

/* Parses a reply with a fresh call; *call_out keeps the recorded usage. */
static cJSON *parse(const char *provider, enum gw_llm_route route, struct gw_llm_options *o,
                    const char *model, int status, const char *body, size_t len, struct gw_arena *a,
                    struct gw_llm_call *call_out, const char **err)
{
    gw_llm_call_init(call_out, a, gw_llm_provider_find(provider), route, o, model);
    *err = NULL;
    return call_out->provider->parse_response(call_out, status, body, len, err);
}

static cJSON *parse_fixture(const char *provider, enum gw_llm_route route, struct gw_llm_options *o,
                            const char *model, int status, const char *rel, struct gw_arena *a,
                            struct gw_llm_call *c)
{
    size_t len = 0;
    char *s = fixture_text(rel, &len);
    const char *err;
    cJSON *out = parse(provider, route, o, model, status, s, len, a, c, &err);
    if (!out) fprintf(stderr, "%s: %s\n", rel, err);
    free(s);
    return out;
}

/* id and created are always present (Kong omits them); the rest compared
 * with Kong's expected reply after removing them. */
static void check_reply_like_kong(cJSON *got, const char *expected_rel, int strip_id)
{
    cJSON *want = fixture_json(expected_rel);
    CHECK(gw_json_str(got, "id") != NULL);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(got, "created")));
    if (strip_id) {
        cJSON_DeleteItemFromObject(got, "id");
        cJSON_DeleteItemFromObject(got, "created");
        cJSON_DeleteItemFromObject(want, "id");
        cJSON_DeleteItemFromObject(want, "created");
    }
    CHECK(json_same(got, want, expected_rel));
    cJSON_Delete(want);
}

static void test_responses(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_options o = kong_options();
    struct gw_llm_call c;

    /* OpenAI-format providers: unchanged. */
    const char *same[][2] = {{"openai", "openai/llm-v1-chat.json"},
                             {"azure", "azure/llm-v1-chat.json"},
                             {"mistral", "mistral/openai/llm-v1-chat.json"}};
    for (size_t i = 0; i < 3; i++) {
        char rel[256], exp[256];
        snprintf(rel, sizeof(rel), "unit/real-responses/%s", same[i][1]);
        snprintf(exp, sizeof(exp), "unit/expected-responses/%s", same[i][1]);
        cJSON *got = parse_fixture(same[i][0], GW_LLM_CHAT, &o, "gpt-4", 200, rel, a, &c);
        check_reply_like_kong(got, exp, 0);
        CHECK_INT(c.usage.prompt, 130);
        CHECK_INT(c.usage.completion, 139);
        CHECK_INT(c.usage.total, 269);
        cJSON_Delete(got);
    }
    cJSON *got = parse_fixture("openai", GW_LLM_COMPLETIONS, &o, "gpt-3.5-turbo-instruct", 200,
                               "unit/real-responses/openai/llm-v1-completions.json", a, &c);
    check_reply_like_kong(got, "unit/expected-responses/openai/llm-v1-completions.json", 0);
    CHECK_INT(c.usage.total, 235);
    CHECK_STR(c.response_model, "gpt-3.5-turbo-instruct");
    cJSON_Delete(got);

    /* Anthropic: deliberate differences are finish_reason (OpenAI's values,
     * not "stop_sequence"), id/created, and usage when Anthropic reports it. */
    got = parse_fixture("anthropic", GW_LLM_CHAT, &o, "claude-2.1", 200,
                        "unit/real-responses/anthropic/llm-v1-chat.json", a, &c);
    cJSON *ch0 = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "choices"), 0);
    CHECK_STR(gw_json_str(ch0, "finish_reason"), "stop");
    cJSON *usage = cJSON_DetachItemFromObject(got, "usage");
    cJSON *zero = cJSON_Parse("{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0}");
    CHECK(json_same(usage, zero, "anthropic usage"));
    cJSON_Delete(zero);
    cJSON_Delete(usage);
    cJSON_ReplaceItemInObject(ch0, "finish_reason", cJSON_CreateString("stop_sequence"));
    check_reply_like_kong(got, "unit/expected-responses/anthropic/llm-v1-chat.json", 1);
    cJSON_Delete(got);

    got = parse_fixture("anthropic", GW_LLM_COMPLETIONS, &o, "claude-2.1", 200,
                        "unit/real-responses/anthropic/llm-v1-completions.json", a, &c);
    ch0 = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "choices"), 0);
    CHECK_STR(gw_json_str(ch0, "finish_reason"), "stop");
    cJSON_ReplaceItemInObject(ch0, "finish_reason", cJSON_CreateString("stop_sequence"));
    CHECK(!cJSON_HasObjectItem(got, "usage")); /* the legacy API reports none */
    check_reply_like_kong(got, "unit/expected-responses/anthropic/llm-v1-completions.json", 1);
    cJSON_Delete(got);

    /* Ollama: Kong's expected usage is not what the reply says; we report
     * prompt_eval_count / eval_count. */
    const char *ollama[][2] = {{"llama2", "llama2/ollama/llm-v1-chat.json"},
                               {"mistral", "mistral/ollama/llm-v1-chat.json"}};
    for (size_t i = 0; i < 2; i++) {
        struct gw_llm_options oo = kong_options();
        oo.llama2_format = oo.mistral_format = GW_LLM_FMT_OLLAMA;
        char rel[256], exp[256];
        snprintf(rel, sizeof(rel), "unit/real-responses/%s", ollama[i][1]);
        snprintf(exp, sizeof(exp), "unit/expected-responses/%s", ollama[i][1]);
        got = parse_fixture(ollama[i][0], GW_LLM_CHAT, &oo, "x", 200, rel, a, &c);
        cJSON *u = cJSON_DetachItemFromObject(got, "usage");
        cJSON *wu = cJSON_Parse("{\"prompt_tokens\":26,\"completion_tokens\":100,"
                                "\"total_tokens\":126}");
        CHECK(json_same(u, wu, "ollama usage"));
        cJSON_Delete(u);
        cJSON_Delete(wu);
        /* the rest as Kong */
        cJSON *w2 = fixture_json(exp);
        cJSON_DeleteItemFromObject(w2, "usage");
        CHECK(gw_json_str(got, "id") != NULL);
        cJSON_DeleteItemFromObject(got, "id");
        cJSON_DeleteItemFromObject(got, "created");
        CHECK(json_same(got, w2, exp));
        cJSON_Delete(w2);
        cJSON_Delete(got);
    }
    struct gw_llm_options oo = kong_options();
    oo.llama2_format = GW_LLM_FMT_OLLAMA;
    got = parse_fixture("llama2", GW_LLM_COMPLETIONS, &oo, "llama2", 200,
                        "unit/real-responses/llama2/ollama/llm-v1-completions.json", a, &c);
    ch0 = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "choices"), 0);
    CHECK_STR(gw_json_str(ch0, "text"), "Because I said so."); /* Kong's fixture text differs */
    CHECK_STR(gw_json_str(got, "object"), "text_completion");
    CHECK_INT(c.usage.total, 25);
    cJSON_Delete(got);

    /* llama2 raw: the echoed prompt is stripped. */
    oo.llama2_format = GW_LLM_FMT_RAW;
    const char *raw[][3] = {
        {"unit/real-responses/llama2/raw/llm-v1-chat.json",
         "unit/expected-responses/llama2/raw/llm-v1-chat.json", "c"},
        {"unit/real-responses/llama2/raw/llm-v1-completions.json",
         "unit/expected-responses/llama2/raw/llm-v1-completions.json", ""},
    };
    for (size_t i = 0; i < 2; i++) {
        got = parse_fixture("llama2", raw[i][2][0] ? GW_LLM_CHAT : GW_LLM_COMPLETIONS, &oo,
                            "llama2", 200, raw[i][0], a, &c);
        cJSON *want = fixture_json(raw[i][1]);
        cJSON *gm = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "choices"), 0);
        cJSON *wm = cJSON_GetArrayItem(cJSON_GetObjectItem(want, "choices"), 0);
        if (raw[i][2][0])
            CHECK(json_same(cJSON_GetObjectItem(gm, "message"), cJSON_GetObjectItem(wm, "message"),
                            raw[i][1]));
        else
            CHECK_STR(gw_json_str(gm, "text"), gw_json_str(wm, "text"));
        CHECK_STR(gw_json_str(gm, "finish_reason"), "stop");
        cJSON_Delete(want);
        cJSON_Delete(got);
    }
    gw_arena_free(a);
}

static void test_anthropic_tool_reply(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_options o = {0};
    struct gw_llm_call c;
    const char *body =
        "{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3-5\","
        "\"content\":[{\"type\":\"text\",\"text\":\"Let me add.\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"add\",\"input\":{\"a\":2,\"b\":12}}],"
        "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":20,\"output_tokens\":9,"
        "\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":5}}";
    const char *err;
    cJSON *got =
        parse("anthropic", GW_LLM_CHAT, &o, "claude", 200, body, strlen(body), a, &c, &err);
    cJSON *want = cJSON_Parse(
        "{\"id\":\"msg_01\",\"object\":\"chat.completion\",\"model\":\"claude-3-5\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Let me "
        "add.\",\"tool_calls\":[{\"id\":\"toolu_9\",\"type\":\"function\",\"function\":{"
        "\"name\":\"add\",\"arguments\":\"{\\\"a\\\":2,\\\"b\\\":12}\"}}]},"
        "\"finish_reason\":\"tool_calls\"}],"
        "\"usage\":{\"prompt_tokens\":125,\"completion_tokens\":9,\"total_tokens\":134,"
        "\"prompt_tokens_details\":{\"cached_tokens\":100}}}");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(got, "created")));
    cJSON_DeleteItemFromObject(got, "created");
    CHECK(json_same(got, want, "anthropic tool reply"));
    CHECK_INT(c.usage.cached, 100);
    cJSON_Delete(got);
    cJSON_Delete(want);

    /* Cost from per-million prices. */
    o.input_cost = (struct gw_opt_num){1, 3.0};
    o.output_cost = (struct gw_opt_num){1, 15.0};
    c.opt = &o;
    double cost = gw_llm_cost(&c);
    CHECK(cost > 0.000509 && cost < 0.000511); /* 125*3e-6 + 9*15e-6 = 0.00051 */

    /* Other stop reasons. */
    CHECK_STR(gw_llm_finish_reason("max_tokens"), "length");
    CHECK_STR(gw_llm_finish_reason("end_turn"), "stop");
    CHECK_STR(gw_llm_finish_reason("refusal"), "content_filter");
    gw_arena_free(a);
}

static void test_errors(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_options o = kong_options();
    struct gw_llm_call c;
    const char *err;

    cJSON *got = parse_fixture("anthropic", GW_LLM_CHAT, &o, "claude", 401,
                               "anthropic/llm-v1-chat/responses/unauthorized.json", a, &c);
    cJSON *e = cJSON_GetObjectItem(got, "error");
    CHECK_STR(gw_json_str(e, "message"), "Invalid API Key");
    CHECK_STR(gw_json_str(e, "type"), "authentication_error");
    cJSON_Delete(got);

    got = parse_fixture("openai", GW_LLM_CHAT, &o, "gpt", 401,
                        "openai/llm-v1-chat/responses/unauthorized.json", a, &c);
    e = cJSON_GetObjectItem(got, "error");
    CHECK_STR(gw_json_str(e, "code"), "invalid_api_key");
    CHECK(strstr(gw_json_str(e, "message"), "Incorrect API key") != NULL);
    cJSON_Delete(got);

    got = parse_fixture("anthropic", GW_LLM_CHAT, &o, "claude", 500,
                        "anthropic/llm-v1-chat/responses/internal_server_error.html", a, &c);
    e = cJSON_GetObjectItem(got, "error");
    CHECK_STR(gw_json_str(e, "message"), "upstream returned HTTP 500");
    CHECK_STR(gw_json_str(e, "type"), "api_error");
    cJSON_Delete(got);

    struct gw_llm_options raw = kong_options();
    raw.llama2_format = GW_LLM_FMT_RAW;
    got = parse_fixture("llama2", GW_LLM_CHAT, &raw, "l", 401,
                        "llama2/raw/responses/unauthorized.json", a, &c);
    CHECK_STR(gw_json_str(cJSON_GetObjectItem(got, "error"), "message"),
              "Model requires a Pro subscription.");
    cJSON_Delete(got);

    /* 200 replies that cannot be translated: NULL and a reason (-> 502). */
    const char *bad[][2] = {
        {"anthropic", "anthropic/llm-v1-chat/responses/bad_upstream_response.json"},
        {"openai", "openai/llm-v1-chat/responses/bad_upstream_response.json"},
        {"openai", "openai/llm-v1-chat/responses/internal_server_error.html"},
        {"anthropic", "anthropic/llm-v1-chat/responses/internal_server_error.html"},
    };
    for (size_t i = 0; i < 4; i++) {
        size_t len = 0;
        char *s = fixture_text(bad[i][1], &len);
        got = parse(bad[i][0], GW_LLM_CHAT, &o, "m", 200, s, len, a, &c, &err);
        CHECK(got == NULL && err != NULL);
        cJSON_Delete(got);
        free(s);
    }

    /* Missing or malformed usage: a reply without usage, not a failure. */
    const char *nousage[] = {"anthropic/llm-v1-chat/responses/no_usage_response.json",
                             "anthropic/llm-v1-chat/responses/malformed_usage_response.json"};
    for (size_t i = 0; i < 2; i++) {
        got = parse_fixture("anthropic", GW_LLM_CHAT, &o, "claude", 200, nousage[i], a, &c);
        CHECK(got != NULL);
        CHECK(!cJSON_HasObjectItem(got, "usage"));
        CHECK_INT(c.usage.present, 0);
        CHECK_STR(
            gw_json_str(cJSON_GetObjectItem(
                            cJSON_GetArrayItem(cJSON_GetObjectItem(got, "choices"), 0), "message"),
                        "content"),
            "The sum of 1 + 1 is 2.");
        cJSON_Delete(got);
    }
    gw_arena_free(a);
}

/* Nothing crashes on hostile replies, for every provider, route and format. */
static void test_garbage(void)
{
    static const char *bodies[] = {
        "",
        "null",
        "[]",
        "[1,2]",
        "\"str\"",
        "{",
        "{\"choices\":5}",
        "{\"choices\":[5]}",
        "{\"choices\":[{\"message\":7}]}",
        "{\"content\":\"x\"}",
        "{\"content\":[1,{\"type\":5},{\"type\":\"tool_use\"},{\"type\":\"text\",\"text\":3}]}",
        "{\"message\":[],\"done\":\"yes\"}",
        "{\"data\":{}}",
        "{\"data\":[{\"generated_text\":5}]}",
        "{\"usage\":{\"input_tokens\":\"many\"},\"content\":[]}",
        "{\"error\":{\"message\":null}}",
        "{\"error\":42}",
        "<html>502</html>",
    };
    struct gw_arena *a = gw_arena_new(0);
    int formats[] = {GW_LLM_FMT_OPENAI, GW_LLM_FMT_OLLAMA, GW_LLM_FMT_RAW};
    int ok = 1;
    for (size_t p = 0; gw_llm_providers[p]; p++)
        for (int route = 0; route < 3; route++)
            for (size_t f = 0; f < 3; f++)
                for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++)
                    for (int status = 200; status <= 500; status += 300) {
                        struct gw_llm_options o = {0};
                        o.llama2_format = o.mistral_format = formats[f];
                        struct gw_llm_call c;
                        const char *err;
                        cJSON *r = parse(gw_llm_providers[p]->name, (enum gw_llm_route)route, &o,
                                         "m", status, bodies[b], strlen(bodies[b]), a, &c, &err);
                        /* Non-2xx always gives an error object. */
                        if (status != 200 && !cJSON_GetObjectItem(r, "error")) ok = 0;
                        if (!r && !err) ok = 0;
                        cJSON_Delete(r);
                    }
    CHECK(ok);
    gw_arena_free(a);
}

static void test_validate(void)
{
    const char *field, *msg;
    struct gw_llm_options o = {0};
    const struct gw_llm_provider *az = gw_llm_provider_find("azure");
    CHECK_INT(az->validate(GW_LLM_CHAT, &o, &field, &msg), -1);
    CHECK_STR(field, "azure_instance");
    o.azure_instance = "i";
    CHECK_INT(az->validate(GW_LLM_CHAT, &o, &field, &msg), -1);
    CHECK_STR(field, "azure_deployment_id");
    o.azure_deployment_id = "d";
    CHECK_INT(az->validate(GW_LLM_CHAT, &o, &field, &msg), 0);

    const struct gw_llm_provider *ll = gw_llm_provider_find("llama2");
    memset(&o, 0, sizeof(o));
    CHECK_INT(ll->validate(GW_LLM_CHAT, &o, &field, &msg), -1);
    CHECK_STR(field, "upstream_url");
    o.upstream_url = "http://x";
    CHECK_INT(ll->validate(GW_LLM_CHAT, &o, &field, &msg), -1);
    CHECK_STR(field, "llama2_format");
    o.llama2_format = GW_LLM_FMT_OLLAMA;
    CHECK_INT(ll->validate(GW_LLM_CHAT, &o, &field, &msg), 0);

    const struct gw_llm_provider *mi = gw_llm_provider_find("mistral");
    memset(&o, 0, sizeof(o));
    CHECK_INT(mi->validate(GW_LLM_CHAT, &o, &field, &msg), 0);
    o.mistral_format = GW_LLM_FMT_OLLAMA;
    CHECK_INT(mi->validate(GW_LLM_CHAT, &o, &field, &msg), -1);
    CHECK_STR(field, "upstream_url");
    /* Anthropic has no embeddings: a load-time route_type error. */
    const struct gw_llm_provider *an = gw_llm_provider_find("anthropic");
    memset(&o, 0, sizeof(o));
    CHECK_INT(an->validate(GW_LLM_CHAT, &o, &field, &msg), 0);
    CHECK_INT(an->validate(GW_LLM_COMPLETIONS, &o, &field, &msg), 0);
    field = NULL;
    CHECK_INT(an->validate(GW_LLM_EMBEDDINGS, &o, &field, &msg), -1);
    CHECK_STR(field, "route_type");
    CHECK(gw_llm_provider_find("gemini") == NULL);
    /* The plugin's enum and the table come from one list: same order, and
     * each provider's own name matches. */
    size_t i = 0;
    for (; gw_llm_providers[i]; i++) {
        CHECK_STR(gw_llm_provider_names[i], gw_llm_providers[i]->name);
        CHECK(gw_llm_provider_find(gw_llm_provider_names[i]) == gw_llm_providers[i]);
    }
    CHECK(gw_llm_provider_names[i] == NULL);
    CHECK_INT((int)i, 5);
}

/* preserve routes: every format sends the client's body as it came, and
 * a native reply is still read for usage (the plugin drops the output). */
static void test_preserve(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_upstream up;
    cJSON *body = cJSON_Parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                              "\"hi\"}],\"options\":{\"seed\":3},\"custom\":[1,2]}");
    struct gw_llm_options o = {0};
    o.upstream_url = "http://127.0.0.1:1/api/chat";
    o.mistral_format = GW_LLM_FMT_OLLAMA;
    cJSON *got = build("mistral", GW_LLM_PRESERVE, &o, NULL, body, &up, a);
    CHECK(json_same(got, body, "mistral ollama preserve body"));
    CHECK_INT(up.ndjson, 1);
    cJSON_Delete(got);
    o.llama2_format = GW_LLM_FMT_RAW;
    got = build("llama2", GW_LLM_PRESERVE, &o, NULL, body, &up, a);
    CHECK(json_same(got, body, "llama2 raw preserve body"));
    cJSON_Delete(got);
    o.llama2_format = GW_LLM_FMT_OLLAMA;
    got = build("llama2", GW_LLM_PRESERVE, &o, NULL, body, &up, a);
    CHECK(json_same(got, body, "llama2 ollama preserve body"));
    cJSON_Delete(got);
    cJSON_Delete(body);

    struct gw_llm_options none = {0};
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("anthropic"), GW_LLM_PRESERVE, &none, NULL);
    const char *reply =
        "{\"id\":\"msg_1\",\"type\":\"message\",\"model\":\"claude-y\",\"content\":[],"
        "\"usage\":{\"input_tokens\":5,\"output_tokens\":2,"
        "\"cache_read_input_tokens\":1}}";
    const char *err = NULL;
    cJSON *out = c.provider->parse_response(&c, 200, reply, strlen(reply), &err);
    CHECK(out != NULL);
    cJSON_Delete(out);
    CHECK(c.usage.present);
    CHECK_INT(c.usage.prompt, 6);
    CHECK_INT(c.usage.completion, 2);
    CHECK_INT(c.usage.cached, 1);
    CHECK_STR(c.response_model, "claude-y");
    gw_arena_free(a);
}

/* llama2 raw with stream: the request asks TGI for a stream (top-level
 * "stream", parameters.details for finish_reason and token counts); a
 * TGI /generate reply's details give finish_reason and usage. */
static void test_llama2_raw_stream_request(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_upstream up;
    struct gw_llm_options o = {0};
    o.llama2_format = GW_LLM_FMT_RAW;
    o.upstream_url = "http://tgi/";
    cJSON *body = cJSON_Parse("{\"stream\":true,\"max_tokens\":9,\"messages\":[{\"role\":"
                              "\"user\",\"content\":\"hi\"}]}");
    cJSON *got = build("llama2", GW_LLM_CHAT, &o, "llama2", body, &up, a);
    CHECK(got != NULL);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(got, "stream")));
    cJSON *params = cJSON_GetObjectItem(got, "parameters");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(params, "stream")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(params, "details")));
    double v = 0;
    CHECK(gw_json_num(params, "max_new_tokens", &v) && v == 9);
    CHECK_STR(gw_json_str(got, "inputs"), "<s>[INST] hi [/INST]");
    CHECK_INT(up.ndjson, 0);
    cJSON_Delete(got);
    cJSON_DeleteItemFromObject(body, "stream");
    got = build("llama2", GW_LLM_CHAT, &o, "llama2", body, &up, a);
    CHECK(got && !cJSON_GetObjectItem(got, "stream"));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(got, "parameters"), "stream")));
    CHECK(!cJSON_GetObjectItem(cJSON_GetObjectItem(got, "parameters"), "details"));
    cJSON_Delete(got);
    cJSON_Delete(body);

    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("llama2"), GW_LLM_CHAT, &o, "llama2");
    const char *reply = "[{\"generated_text\":\" Cut short\",\"details\":{\"finish_reason\":"
                        "\"length\",\"generated_tokens\":2,\"seed\":null}}]";
    const char *err = NULL;
    cJSON *out = c.provider->parse_response(&c, 200, reply, strlen(reply), &err);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(out, "choices"), 0);
    CHECK_STR(gw_json_str(cJSON_GetObjectItem(ch, "message"), "content"), "Cut short");
    CHECK_STR(gw_json_str(ch, "finish_reason"), "length");
    CHECK(gw_json_num(cJSON_GetObjectItem(out, "usage"), "completion_tokens", &v) && v == 2);
    CHECK_INT(c.usage.completion, 2);
    cJSON_Delete(out);
    gw_arena_free(a);
}

/* Builds an Anthropic request on c from a JSON text; NULL and *err when
 * the request is refused. */
static cJSON *anthropic_req(struct gw_llm_call *c, struct gw_arena *a, struct gw_llm_options *o,
                            const char *json, const char **err)
{
    gw_llm_call_init(c, a, gw_llm_provider_find("anthropic"), GW_LLM_CHAT, o, "claude");
    cJSON *body = cJSON_Parse(json);
    struct gw_llm_upstream up;
    *err = NULL;
    cJSON *got = gw_llm_build(c, body, &up, err) == 0 ? cJSON_Parse(up.body) : NULL;
    cJSON_Delete(body);
    return got;
}

/* The tool named name in an Anthropic request's tools[], or NULL. */
static const cJSON *req_tool(const cJSON *req, const char *name)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(req, "tools"))
    {
        const char *n = gw_json_str(t, "name");
        if (n && strcmp(n, name) == 0) return t;
    }
    return NULL;
}

/* response_format for Anthropic: a forced json_response tool whose
 * input_schema is the client's schema; its tool_use input comes back as
 * message.content JSON text with finish_reason stop. */
static void test_anthropic_response_format(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_options o = {0};
    struct gw_llm_call c;
    const char *err;
    const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"Extract: Ann, 31\"}]";
    cJSON *got = anthropic_req(
        &c, a, &o,
        gw_sprintf(a,
                   "{%s,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
                   "\"name\":\"person\",\"strict\":true,\"schema\":{\"type\":\"object\","
                   "\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
                   "\"integer\"}},\"required\":[\"name\",\"age\"],\"additionalProperties\":"
                   "false}}}}",
                   msgs),
        &err);
    CHECK(got != NULL);
    cJSON *want_schema = cJSON_Parse(
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
        "\"integer\"}},\"required\":[\"name\",\"age\"],\"additionalProperties\":false}");
    const cJSON *tool = req_tool(got, "json_response");
    CHECK(tool != NULL);
    CHECK(json_same(cJSON_GetObjectItem(tool, "input_schema"), want_schema, "input_schema"));
    CHECK(gw_json_str(tool, "description") && strstr(gw_json_str(tool, "description"), "person"));
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(got, "tools")), 1);
    cJSON *want_tc = cJSON_Parse("{\"type\":\"tool\",\"name\":\"json_response\"}");
    CHECK(json_same(cJSON_GetObjectItem(got, "tool_choice"), want_tc, "forced tool_choice"));
    CHECK(!cJSON_GetObjectItem(got, "response_format"));
    CHECK_STR(c.json_tool, "json_response");
    cJSON_Delete(got);

    /* The reply: the tool's input is the content, no tool_calls, stop. */
    const char *reply =
        "{\"id\":\"msg_j\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\","
        "\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_j\",\"name\":\"json_response\","
        "\"input\":{\"name\":\"Ann\",\"age\":31}}],\"stop_reason\":\"tool_use\","
        "\"usage\":{\"input_tokens\":40,\"output_tokens\":12}}";
    cJSON *out = c.provider->parse_response(&c, 200, reply, strlen(reply), &err);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(out, "choices"), 0);
    cJSON *m = cJSON_GetObjectItem(ch, "message");
    CHECK_STR(gw_json_str(m, "content"), "{\"name\":\"Ann\",\"age\":31}");
    CHECK(!cJSON_GetObjectItem(m, "tool_calls"));
    CHECK_STR(gw_json_str(ch, "finish_reason"), "stop");
    CHECK_INT(c.usage.total, 52);
    cJSON_Delete(out);

    /* Without response_format the same reply is a tool call. */
    got = anthropic_req(&c, a, &o, gw_sprintf(a, "{%s}", msgs), &err);
    CHECK(got && !cJSON_GetObjectItem(got, "tools") && !cJSON_GetObjectItem(got, "tool_choice"));
    CHECK(c.json_tool == NULL);
    cJSON_Delete(got);
    out = c.provider->parse_response(&c, 200, reply, strlen(reply), &err);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(out, "choices"), 0);
    CHECK_STR(gw_json_str(ch, "finish_reason"), "tool_calls");
    CHECK(cJSON_GetArraySize(
              cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "tool_calls")) == 1);
    cJSON_Delete(out);

    /* json_object: any object; "text" changes nothing. */
    got = anthropic_req(&c, a, &o,
                        gw_sprintf(a, "{%s,\"response_format\":{\"type\":\"json_object\"}}", msgs),
                        &err);
    cJSON *obj = cJSON_Parse("{\"type\":\"object\"}");
    CHECK(json_same(cJSON_GetObjectItem(req_tool(got, "json_response"), "input_schema"), obj,
                    "json_object schema"));
    CHECK(json_same(cJSON_GetObjectItem(got, "tool_choice"), want_tc, "json_object tool_choice"));
    cJSON_Delete(obj);
    cJSON_Delete(got);
    got = anthropic_req(&c, a, &o,
                        gw_sprintf(a, "{%s,\"response_format\":{\"type\":\"text\"}}", msgs), &err);
    CHECK(got && !cJSON_GetObjectItem(got, "tools") && c.json_tool == NULL);
    cJSON_Delete(got);

    /* With the client's tools: its tools kept, ours added, tool_choice any
     * (auto, required or absent), the client's forced tool kept, none ->
     * ours forced; parallel_tool_calls false survives. */
    const char *tools = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\","
                        "\"parameters\":{\"type\":\"object\"}}}]";
    const char *rf = "\"response_format\":{\"type\":\"json_object\"}";
    struct {
        const char *extra, *want;
    } choices[] = {
        {"", "{\"type\":\"any\"}"},
        {",\"tool_choice\":\"auto\"", "{\"type\":\"any\"}"},
        {",\"tool_choice\":\"required\"", "{\"type\":\"any\"}"},
        {",\"tool_choice\":\"none\"", "{\"type\":\"tool\",\"name\":\"json_response\"}"},
        {",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"lookup\"}}",
         "{\"type\":\"tool\",\"name\":\"lookup\"}"},
        {",\"parallel_tool_calls\":false", "{\"type\":\"any\",\"disable_parallel_tool_use\":true}"},
    };
    for (size_t i = 0; i < sizeof(choices) / sizeof(choices[0]); i++) {
        got = anthropic_req(&c, a, &o,
                            gw_sprintf(a, "{%s,%s,%s%s}", msgs, tools, rf, choices[i].extra), &err);
        cJSON *w = cJSON_Parse(choices[i].want);
        CHECK(json_same(cJSON_GetObjectItem(got, "tool_choice"), w, choices[i].extra));
        CHECK(req_tool(got, "lookup") != NULL && req_tool(got, "json_response") != NULL);
        cJSON_Delete(w);
        cJSON_Delete(got);
    }
    /* A reply calling a client tool stays a tool call. */
    const char *both =
        "{\"id\":\"msg_b\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_l\",\"name\":"
        "\"lookup\",\"input\":{\"q\":1}}],\"stop_reason\":\"tool_use\"}";
    out = c.provider->parse_response(&c, 200, both, strlen(both), &err);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(out, "choices"), 0);
    CHECK_STR(gw_json_str(ch, "finish_reason"), "tool_calls");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content")));
    cJSON_Delete(out);

    /* Refused: a non-object schema, a missing schema, an unknown type, a
     * client tool named like ours. */
    const char *bad[] = {
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
        "\"schema\":{\"type\":\"array\"}}}",
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}",
        "\"response_format\":{\"type\":\"yaml\"}",
        "\"response_format\":{\"type\":\"json_object\"},\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"json_response\"}}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        got = anthropic_req(&c, a, &o, gw_sprintf(a, "{%s,%s}", msgs, bad[i]), &err);
        CHECK(got == NULL && err && strstr(err, "response_format") != NULL);
        if (got) fprintf(stderr, "accepted: %s\n", bad[i]);
        cJSON_Delete(got);
    }
    cJSON_Delete(want_tc);
    cJSON_Delete(want_schema);
    gw_arena_free(a);
}

/* n > 1 is refused where the provider returns one choice; Ollama honours
 * tool_choice "none" by not offering the tools; llama2 raw (TGI) gets
 * stop, seed and response_format as a JSON grammar. */
static void test_single_choice_and_tgi_params(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_upstream up;
    struct gw_llm_options o = {0};
    o.upstream_url = "http://x/api/chat";
    o.llama2_format = o.mistral_format = GW_LLM_FMT_OLLAMA;
    const char *err;
    struct gw_llm_call c;
    cJSON *body = cJSON_Parse("{\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    const char *provs[] = {"mistral", "llama2"};
    for (int raw = 0; raw <= 1; raw++) {
        o.llama2_format = raw ? GW_LLM_FMT_RAW : GW_LLM_FMT_OLLAMA;
        for (size_t i = raw; i < 2; i++) {
            gw_llm_call_init(&c, a, gw_llm_provider_find(provs[i]), GW_LLM_CHAT, &o, "m");
            err = NULL;
            CHECK_INT(gw_llm_build(&c, body, &up, &err), -1);
            CHECK(err && strstr(err, "n > 1"));
        }
    }
    cJSON_DeleteItemFromObject(body, "n");
    cJSON_AddNumberToObject(body, "n", 1);
    o.llama2_format = GW_LLM_FMT_OLLAMA;
    gw_llm_call_init(&c, a, gw_llm_provider_find("llama2"), GW_LLM_CHAT, &o, "m");
    CHECK_INT(gw_llm_build(&c, body, &up, &err), 0);
    cJSON_Delete(body);

    body = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{"
                       "\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}");
    cJSON *got = build("mistral", GW_LLM_CHAT, &o, "m", body, &up, a);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(got, "tools")), 1);
    cJSON_Delete(got);
    cJSON_AddStringToObject(body, "tool_choice", "none");
    got = build("mistral", GW_LLM_CHAT, &o, "m", body, &up, a);
    CHECK(got && !cJSON_GetObjectItem(got, "tools"));
    cJSON_Delete(got);
    cJSON_Delete(body);

    o.llama2_format = GW_LLM_FMT_RAW;
    body = cJSON_Parse(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":\"###\",\"seed\":7,"
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"p\","
        "\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}}}}");
    got = build("llama2", GW_LLM_CHAT, &o, "m", body, &up, a);
    cJSON *params = cJSON_GetObjectItem(got, "parameters");
    cJSON *want = cJSON_Parse("{\"type\":\"json\",\"value\":{\"type\":\"object\",\"properties\":{"
                              "\"a\":{\"type\":\"string\"}}}}");
    CHECK(json_same(cJSON_GetObjectItem(params, "grammar"), want, "TGI grammar"));
    cJSON_Delete(want);
    want = cJSON_Parse("[\"###\"]");
    CHECK(json_same(cJSON_GetObjectItem(params, "stop"), want, "TGI stop"));
    cJSON_Delete(want);
    double v = 0;
    CHECK(gw_json_num(params, "seed", &v) && v == 7);
    cJSON_Delete(got);
    cJSON_Delete(body);
    /* Text parts are joined; an image part is refused, not dropped. */
    body = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                       "\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]}");
    got = build("llama2", GW_LLM_CHAT, &o, "m", body, &up, a);
    CHECK_STR(gw_json_str(got, "inputs"), "<s>[INST] a\nb [/INST]");
    cJSON_Delete(got);
    cJSON_Delete(body);
    body = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                       "\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
                       "\"https://x/y.png\"}}]}]}");
    gw_llm_call_init(&c, a, gw_llm_provider_find("llama2"), GW_LLM_CHAT, &o, "m");
    err = NULL;
    CHECK_INT(gw_llm_build(&c, body, &up, &err), -1);
    CHECK(err && strstr(err, "image_url"));
    cJSON_Delete(body);
    body = cJSON_Parse("{\"prompt\":\"hi\",\"response_format\":{\"type\":\"json_object\"}}");
    got = build("llama2", GW_LLM_COMPLETIONS, &o, "m", body, &up, a);
    want = cJSON_Parse("{\"type\":\"json\",\"value\":{\"type\":\"object\"}}");
    CHECK(json_same(cJSON_GetObjectItem(cJSON_GetObjectItem(got, "parameters"), "grammar"), want,
                    "TGI json_object grammar"));
    cJSON_Delete(want);
    cJSON_Delete(got);
    cJSON_Delete(body);
    gw_arena_free(a);
}

/* An Ollama reply that reports no counts gets no usage object, not zeros. */
static void test_ollama_no_usage(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_options o;
    memset(&o, 0, sizeof(o));
    o.llama2_format = GW_LLM_FMT_OLLAMA;
    o.upstream_url = "http://ollama:11434/api/chat";
    struct gw_llm_call c;
    const char *err;
    const char *body = "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},"
                       "\"done\":true,\"done_reason\":\"stop\"}";
    cJSON *out = parse("llama2", GW_LLM_CHAT, &o, "m", 200, body, strlen(body), a, &c, &err);
    CHECK(out != NULL);
    CHECK(out && !cJSON_HasObjectItem(out, "usage"));
    cJSON_Delete(out);
    gw_arena_free(a);
}

/* Token counts a provider cannot mean (negative, absurd) are not counts. */
static void test_absurd_usage(void)
{
    struct gw_llm_call c;
    memset(&c, 0, sizeof(c));
    cJSON *u = cJSON_Parse("{\"prompt_tokens\":-5,\"completion_tokens\":1e20}");
    gw_llm_usage_from_openai(&c, u);
    CHECK_INT(c.usage.present, 0);
    CHECK(c.usage.prompt == 0 && c.usage.completion == 0 && c.usage.total == 0);
    cJSON_Delete(u);
    u = cJSON_Parse("{\"prompt_tokens\":7,\"completion_tokens\":3}");
    gw_llm_usage_from_openai(&c, u);
    CHECK_INT(c.usage.present, 1);
    CHECK(c.usage.prompt == 7 && c.usage.completion == 3 && c.usage.total == 10);
    cJSON_Delete(u);
}

int main(void)
{
    test_absurd_usage();
    test_ollama_no_usage();
    test_requests();
    test_option_precedence();
    test_anthropic_tools_and_images();
    test_responses();
    test_anthropic_tool_reply();
    test_errors();
    test_garbage();
    test_validate();
    test_preserve();
    test_llama2_raw_stream_request();
    test_anthropic_response_format();
    test_single_choice_and_tgi_params();
    return gw_test_done("test_llm_translate");
}
