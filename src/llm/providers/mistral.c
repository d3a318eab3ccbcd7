/*
 * Mistral: its own API is OpenAI-shaped (mistral_format openai, the
 * default, at api.mistral.ai); with mistral_format ollama the model runs on
 * an Ollama server named by upstream_url.
 */
#include "llm/llm.h"

static int mistral_validate(enum gw_llm_route route, const struct gw_llm_options *o,
                            const char **field, const char **msg)
{
    int ollama = o->mistral_format == GW_LLM_FMT_OLLAMA;
    if (ollama && (!o->upstream_url || !*o->upstream_url)) {
        *field = "upstream_url";
        *msg = "required for provider mistral with mistral_format ollama";
        return -1;
    }
    if (!ollama && route == GW_LLM_COMPLETIONS && (!o->upstream_url || !*o->upstream_url)) {
        *field = "route_type";
        *msg = "llm/v1/completions is not offered by Mistral's API (use mistral_format ollama "
               "or an upstream_url)";
        return -1;
    }
    return 0;
}

/* OpenAI names that api.mistral.ai spells its own way; it refuses the
 * OpenAI spelling (422 extra_forbidden) rather than ignore it. */
static const char *const mistral_names[][2] = {
    {"max_completion_tokens", "max_tokens"}, /* chat: only max_tokens */
    {"seed", "random_seed"},
    {"dimensions", "output_dimension"}, /* embeddings */
};

/* body with the OpenAI names Mistral spells differently renamed (a copy),
 * or NULL when there are none. When both spellings are given, Mistral's
 * own wins and the OpenAI one is dropped. */
static cJSON *mistral_rename(const cJSON *body)
{
    cJSON *copy = NULL;
    for (size_t i = 0; i < sizeof(mistral_names) / sizeof(mistral_names[0]); i++) {
        const char *from = mistral_names[i][0], *to = mistral_names[i][1];
        if (!cJSON_HasObjectItem(body, from)) continue;
        if (!copy) copy = cJSON_Duplicate(body, 1);
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(copy, from);
        if (cJSON_HasObjectItem(copy, to))
            cJSON_Delete(v);
        else
            cJSON_AddItemToObject(copy, to, v);
    }
    return copy;
}

static int mistral_build(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                         const char **err)
{
    if (c->opt->mistral_format == GW_LLM_FMT_OLLAMA) {
        up->url = gw_llm_url(c, "", "");
        return gw_llm_ollama_build_body(c, body, up, err);
    }
    up->url = gw_llm_url(c, "https://api.mistral.ai",
                         c->route == GW_LLM_EMBEDDINGS ? "/v1/embeddings" : "/v1/chat/completions");
    cJSON *renamed = mistral_rename(body);
    /* api.mistral.ai refuses stream_options (422 extra_forbidden) and puts
     * usage on its last chunk anyway. */
    int rc = gw_llm_openai_build_body(c, renamed ? renamed : body, up, GW_LLM_USAGE_NATIVE, err);
    cJSON_Delete(renamed);
    return rc;
}

static cJSON *mistral_parse(struct gw_llm_call *c, int status, const char *body, size_t len,
                            const char **err)
{
    if (c->opt->mistral_format == GW_LLM_FMT_OLLAMA)
        return gw_llm_ollama_parse(c, status, body, len, err);
    return gw_llm_openai_parse(c, status, body, len, err);
}

static int mistral_stream(struct gw_llm_call *c, const char *event, const char *data, size_t len,
                          struct evbuffer *out)
{
    if (c->opt->mistral_format == GW_LLM_FMT_OLLAMA)
        return gw_llm_ollama_stream_frame(c, event, data, len, out);
    return gw_llm_openai_stream_frame(c, event, data, len, out);
}

const struct gw_llm_provider gw_llm_mistral = {
    .name = "mistral",
    .auth_header = "Authorization",
    .auth_bearer = 1,
    .validate = mistral_validate,
    .build_request = mistral_build,
    .parse_response = mistral_parse,
    .stream_frame = mistral_stream,
};
