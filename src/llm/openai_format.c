/*
 * The OpenAI wire format, for every upstream that speaks it: OpenAI itself,
 * Azure OpenAI, Mistral's API, llama2/OpenAI-compatible servers (vLLM,
 * llama.cpp, Ollama's /v1). Requests go out as the client sent them with
 * the model and the plugin's options applied; replies come back nearly
 * untouched, only checked and completed (id, created) and read for usage.
 */
#include <string.h>

#include "gw_arena.h"
#include "llm.h"

int gw_llm_openai_build_body(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                             enum gw_llm_stream_usage usage, const char **err)
{
    cJSON *req = cJSON_Duplicate(body, 1);
    if (!req) {
        *err = "request body is not a JSON object";
        return -1;
    }
    if (c->route != GW_LLM_PRESERVE) {
        if (c->model && *c->model) {
            cJSON_DeleteItemFromObjectCaseSensitive(req, "model");
            cJSON_AddStringToObject(req, "model", c->model);
        }
        if (c->route != GW_LLM_EMBEDDINGS) {
            gw_llm_apply_sampling(c->opt, req,
                                  cJSON_HasObjectItem(body, "max_completion_tokens") &&
                                      !cJSON_HasObjectItem(body, "max_tokens"));
            cJSON_DeleteItemFromObjectCaseSensitive(req, "stream");
            cJSON_AddBoolToObject(req, "stream", c->stream);
            if (!c->stream) {
                cJSON_DeleteItemFromObjectCaseSensitive(req, "stream_options");
            } else if (usage == GW_LLM_USAGE_ASK) {
                /* Usage is always recorded; the extra chunk is dropped later
                 * when the client did not ask for it. The client's other
                 * stream_options stay. */
                cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
                if (!cJSON_IsObject(so)) {
                    cJSON_DeleteItemFromObjectCaseSensitive(req, "stream_options");
                    so = cJSON_AddObjectToObject(req, "stream_options");
                }
                cJSON_DeleteItemFromObjectCaseSensitive(so, "include_usage");
                cJSON_AddTrueToObject(so, "include_usage");
            } else if (usage == GW_LLM_USAGE_NATIVE) {
                cJSON_DeleteItemFromObjectCaseSensitive(req, "stream_options");
                c->usage_native = 1;
            }
        }
    }
    up->body = gw_json_print(c->arena, req, &up->body_len);
    cJSON_Delete(req);
    return 0;
}

/* Checks the reply has the shape the route promises; OpenAI SDKs index
 * into choices / data without checking. */
static int openai_shape_ok(const struct gw_llm_call *c, const cJSON *j)
{
    if (c->route == GW_LLM_PRESERVE) return 1;
    if (c->route == GW_LLM_EMBEDDINGS)
        return cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "data"));
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    if (!cJSON_IsArray(choices)) return 0;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, choices)
    {
        if (!cJSON_IsObject(ch)) return 0;
        if (c->route == GW_LLM_CHAT &&
            !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(ch, "message")))
            return 0;
    }
    return 1;
}

cJSON *gw_llm_openai_parse(struct gw_llm_call *c, int status, const char *body, size_t len,
                           const char **err)
{
    cJSON *j;
    if (gw_llm_reply_parse(status, body, len, &j, err)) return j;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (e && !cJSON_IsNull(e)) {
        const char *m = cJSON_IsObject(e) ? gw_json_str(e, "message") : NULL;
        *err = gw_sprintf(c->arena, "upstream reported an error: %s", m ? m : "(no message)");
        cJSON_Delete(j);
        return NULL;
    }
    if (!openai_shape_ok(c, j)) {
        cJSON_Delete(j);
        *err = c->route == GW_LLM_EMBEDDINGS ? "upstream reply has no data array"
                                             : "upstream reply has no valid choices";
        return NULL;
    }
    const char *model = gw_json_str(j, "model");
    if (model && *model) c->response_model = gw_strdup(c->arena, model);
    gw_llm_usage_from_openai(c, cJSON_GetObjectItemCaseSensitive(j, "usage"));
    if (c->route == GW_LLM_CHAT || c->route == GW_LLM_COMPLETIONS) {
        /* Some compatible servers leave out what SDKs read. */
        if (!gw_json_str(j, "id")) {
            cJSON_DeleteItemFromObjectCaseSensitive(j, "id");
            cJSON_AddStringToObject(j, "id", gw_llm_new_id(c->arena, "chatcmpl-"));
        }
        if (!gw_json_str(j, "object")) {
            cJSON_DeleteItemFromObjectCaseSensitive(j, "object");
            cJSON_AddStringToObject(
                j, "object", c->route == GW_LLM_CHAT ? "chat.completion" : "text_completion");
        }
        if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "created"))) {
            cJSON_DeleteItemFromObjectCaseSensitive(j, "created");
            cJSON_AddNumberToObject(j, "created", (double)c->created);
        }
        if (!model && c->model) cJSON_AddStringToObject(j, "model", c->model);
    }
    return j;
}

int gw_llm_openai_stream_frame(struct gw_llm_call *c, const char *event, const char *data,
                               size_t len, struct evbuffer *out)
{
    if (gw_llm_is_done_marker(data, len)) {
        /* A usage chunk the upstream never sends on its own. */
        if (c->usage_native && c->usage.present)
            gw_llm_emit_tail(c, out);
        else
            gw_llm_emit_done(c, out);
        return 0;
    }
    cJSON *j =
        gw_llm_frame_json(c, data, len, out, "upstream sent a stream frame that is not JSON");
    if (!j) return -1;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if ((e && !cJSON_IsNull(e)) || (event && strcmp(event, "error") == 0)) {
        /* Forward the provider's own error event, then end the stream. */
        gw_llm_emit_raw(out, data, len);
        c->errored = 1;
        gw_llm_emit_done(c, out);
        cJSON_Delete(j);
        return -1;
    }
    const char *model = gw_json_str(j, "model");
    if (model && *model && !c->response_model) c->response_model = gw_strdup(c->arena, model);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    int usage_only = cJSON_IsObject(usage) && cJSON_GetArraySize(choices) == 0;
    if (cJSON_IsObject(usage)) gw_llm_usage_from_openai(c, usage);
    const cJSON *ch0 = cJSON_GetArrayItem(choices, 0);
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch0, "finish_reason");
    if (cJSON_IsString(fr)) c->finish_sent = 1;
    cJSON_Delete(j);
    if (usage_only && !c->include_usage) return 0;
    c->role_sent = 1;
    /* Pass the frame through byte for byte. */
    gw_llm_emit_raw(out, data, len);
    return 0;
}
