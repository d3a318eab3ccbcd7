/*
 * Azure OpenAI: the OpenAI wire format at a per-deployment URL,
 * https://{instance}.openai.azure.com/openai/deployments/{deployment}/
 * chat/completions?api-version=..., with the key in an `api-key` header.
 */
#include <string.h>

#include "gw_arena.h"
#include "llm/llm.h"

#define AZURE_DEFAULT_API_VERSION "2023-05-15" /* Kong's default */
/* The first api-versions that accept stream_options (2024-09-01-preview,
 * then GA 2024-10-21); older ones answer 400 "Unrecognized request
 * argument supplied: stream_options". Versions are dates: compared as text. */
#define AZURE_STREAM_OPTIONS_SINCE "2024-09-01"

static int azure_validate(enum gw_llm_route route, const struct gw_llm_options *o,
                          const char **field, const char **msg)
{
    if (o->upstream_url && *o->upstream_url) return 0;
    if (!o->azure_instance || !*o->azure_instance) {
        *field = "azure_instance";
        *msg = "required for provider azure (or set upstream_url)";
        return -1;
    }
    if (!o->azure_deployment_id || !*o->azure_deployment_id) {
        *field = "azure_deployment_id";
        *msg = "required for provider azure (or set upstream_url)";
        return -1;
    }
    return 0;
}

static int azure_build(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                       const char **err)
{
    const struct gw_llm_options *o = c->opt;
    const char *ver = o->client_api_version                           ? o->client_api_version
                      : o->azure_api_version && *o->azure_api_version ? o->azure_api_version
                                                                      : AZURE_DEFAULT_API_VERSION;
    if (o->upstream_url && *o->upstream_url) {
        const char *u = o->upstream_url;
        const char *in_url = strstr(u, "api-version=");
        if (in_url && o->client_api_version) {
            /* The client's version replaces the one written in the URL. */
            const char *rest = strchr(in_url, '&');
            up->url =
                gw_sprintf(c->arena, "%.*s%s%s", (int)(in_url + 12 - u), u, ver, rest ? rest : "");
        } else if (in_url) {
            ver = in_url + 12; /* what Azure will see (up to '&') */
            up->url = u;
        } else {
            up->url =
                gw_sprintf(c->arena, "%s%capi-version=%s", u, strchr(u, '?') ? '&' : '?', ver);
        }
    } else {
        const char *op = c->route == GW_LLM_COMPLETIONS  ? "completions"
                         : c->route == GW_LLM_EMBEDDINGS ? "embeddings"
                                                         : "chat/completions";
        /* As Kong's azure driver: upstream_path goes after the deployment
         * (it names the operation), not in place of it. */
        const char *path =
            o->upstream_path && *o->upstream_path
                ? gw_sprintf(c->arena, "/openai/deployments/%s%s", o->azure_deployment_id,
                             o->upstream_path)
                : gw_sprintf(c->arena, "/openai/deployments/%s/%s", o->azure_deployment_id, op);
        up->url = gw_sprintf(c->arena, "https://%s.openai.azure.com%s%capi-version=%s",
                             o->azure_instance, path, strchr(path, '?') ? '&' : '?', ver);
    }
    enum gw_llm_stream_usage usage =
        strncmp(ver, AZURE_STREAM_OPTIONS_SINCE, 10) >= 0 ? GW_LLM_USAGE_ASK : GW_LLM_USAGE_NONE;
    return gw_llm_openai_build_body(c, body, up, usage, err);
}

const struct gw_llm_provider gw_llm_azure = {
    .name = "azure",
    .auth_header = "api-key",
    .auth_bearer = 0,
    .validate = azure_validate,
    .build_request = azure_build,
    .parse_response = gw_llm_openai_parse,
    .stream_frame = gw_llm_openai_stream_frame,
};
