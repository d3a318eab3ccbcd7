/*
 * OpenAI, and any OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1)
 * reached through model.options.upstream_url.
 */
#include "llm/llm.h"

static const char *openai_path(enum gw_llm_route route)
{
    switch (route) {
    case GW_LLM_COMPLETIONS:
        return "/v1/completions";
    case GW_LLM_EMBEDDINGS:
        return "/v1/embeddings";
    default:
        return "/v1/chat/completions";
    }
}

static int openai_build(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                        const char **err)
{
    up->url = gw_llm_url(c, "https://api.openai.com", openai_path(c->route));
    return gw_llm_openai_build_body(c, body, up, GW_LLM_USAGE_ASK, err);
}

const struct gw_llm_provider gw_llm_openai = {
    .name = "openai",
    .auth_header = "Authorization",
    .auth_bearer = 1,
    .build_request = openai_build,
    .parse_response = gw_llm_openai_parse,
    .stream_frame = gw_llm_openai_stream_frame,
};
