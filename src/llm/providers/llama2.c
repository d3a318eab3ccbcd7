/*
 * Llama 2 models behind a server of the user's choice (upstream_url is
 * required), in one of three formats: "openai" (OpenAI-compatible server),
 * "ollama" (Ollama's native API) or "raw" (a text-generation endpoint
 * taking {"inputs", "parameters"} and answering generated_text, e.g.
 * Hugging Face TGI), for which we render Llama 2's chat prompt template.
 */
#include <string.h>

#include <event2/buffer.h>

#include "gw_arena.h"
#include "llm/llm.h"

static int llama2_validate(enum gw_llm_route route, const struct gw_llm_options *o,
                           const char **field, const char **msg)
{
    if (!o->upstream_url || !*o->upstream_url) {
        *field = "upstream_url";
        *msg = "required for provider llama2";
        return -1;
    }
    if (o->llama2_format == GW_LLM_FMT_DEFAULT) {
        *field = "llama2_format";
        *msg = "required for provider llama2 (raw, openai or ollama)";
        return -1;
    }
    if (o->llama2_format == GW_LLM_FMT_RAW && route == GW_LLM_EMBEDDINGS) {
        *field = "llama2_format";
        *msg = "format raw has no embeddings";
        return -1;
    }
    return 0;
}

/* Text of an OpenAI content value (string, or the text parts joined). */
static void append_content(struct evbuffer *b, const cJSON *content)
{
    if (cJSON_IsString(content)) {
        evbuffer_add(b, content->valuestring, strlen(content->valuestring));
        return;
    }
    const cJSON *part;
    int first = 1;
    cJSON_ArrayForEach(part, content)
    {
        const char *t = gw_json_str(part, "text");
        if (!t) continue;
        if (!first) evbuffer_add(b, "\n", 1);
        evbuffer_add(b, t, strlen(t));
        first = 0;
    }
}

/* Llama 2's chat template: system prompt folded into the first [INST],
 * each user turn in [INST] ... [/INST], each answer closed by </s>. */
static const char *raw_chat_prompt(struct gw_llm_call *c, const cJSON *messages, const char **err)
{
    if (!cJSON_IsArray(messages)) {
        *err = "'messages' must be an array";
        return NULL;
    }
    struct evbuffer *b = evbuffer_new();
    struct evbuffer *sys = evbuffer_new();
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const char *role = gw_json_str(m, "role");
        if (role && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)) {
            if (evbuffer_get_length(sys)) evbuffer_add(sys, "\n", 1);
            append_content(sys, cJSON_GetObjectItemCaseSensitive(m, "content"));
        }
    }
    int open = 0, first_user = 1;
    cJSON_ArrayForEach(m, messages)
    {
        const char *role = gw_json_str(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!role) continue;
        if (strcmp(role, "user") == 0) {
            evbuffer_add_printf(b, "<s>[INST] ");
            if (first_user && evbuffer_get_length(sys)) {
                evbuffer_add_printf(b, "<<SYS>>\n");
                evbuffer_add_buffer(b, sys);
                evbuffer_add_printf(b, "\n<</SYS>>\n\n");
            }
            first_user = 0;
            append_content(b, content);
            evbuffer_add_printf(b, " [/INST]");
            open = 1;
        } else if (strcmp(role, "assistant") == 0 && open) {
            evbuffer_add(b, " ", 1);
            append_content(b, content);
            evbuffer_add_printf(b, " </s>");
            open = 0;
        }
    }
    size_t n = evbuffer_get_length(b);
    char *s = gw_alloc(c->arena, n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    evbuffer_free(sys);
    return s;
}

static int raw_build(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                     const char **err)
{
    if (c->route == GW_LLM_PRESERVE) {
        up->body = gw_json_print(c->arena, body, &up->body_len);
        return 0;
    }
    if (c->stream) {
        *err = "streaming is not supported with llama2_format raw";
        return -1;
    }
    const char *prompt;
    if (c->route == GW_LLM_CHAT) {
        prompt = raw_chat_prompt(c, cJSON_GetObjectItemCaseSensitive(body, "messages"), err);
        if (!prompt) return -1;
    } else {
        const char *p = gw_json_str(body, "prompt");
        if (!p) {
            *err = "'prompt' must be a string";
            return -1;
        }
        prompt = gw_sprintf(c->arena, "<s>[INST] %s [/INST]", p);
    }
    c->sent_prompt = prompt;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "inputs", prompt);
    cJSON *params = cJSON_AddObjectToObject(req, "parameters");
    const struct gw_llm_options *o = c->opt;
    double v;
    if (o->max_tokens.set)
        cJSON_AddNumberToObject(params, "max_new_tokens", o->max_tokens.v);
    else if (gw_json_num(body, "max_tokens", &v) || gw_json_num(body, "max_completion_tokens", &v))
        cJSON_AddNumberToObject(params, "max_new_tokens", v);
    if (o->temperature.set)
        cJSON_AddNumberToObject(params, "temperature", o->temperature.v);
    else if (gw_json_num(body, "temperature", &v))
        cJSON_AddNumberToObject(params, "temperature", v);
    if (o->top_k.set) cJSON_AddNumberToObject(params, "top_k", o->top_k.v);
    if (o->top_p.set)
        cJSON_AddNumberToObject(params, "top_p", o->top_p.v);
    else if (gw_json_num(body, "top_p", &v))
        cJSON_AddNumberToObject(params, "top_p", v);
    cJSON_AddFalseToObject(params, "stream");
    up->body = gw_json_print(c->arena, req, &up->body_len);
    cJSON_Delete(req);
    return 0;
}

static int llama2_build(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                        const char **err)
{
    up->url = gw_llm_url(c, "", "");
    switch (c->opt->llama2_format) {
    case GW_LLM_FMT_OLLAMA:
        return gw_llm_ollama_build_body(c, body, up, err);
    case GW_LLM_FMT_RAW:
        return raw_build(c, body, up, err);
    default:
        return gw_llm_openai_build_body(c, body, up, err);
    }
}

/* generated_text may echo the prompt: drop it (exactly, or up to the last
 * [/INST] when the server reformatted it) and the whitespace after it. */
static const char *strip_prompt(const struct gw_llm_call *c, const char *text)
{
    size_t pl = c->sent_prompt ? strlen(c->sent_prompt) : 0;
    if (pl && strncmp(text, c->sent_prompt, pl) == 0) {
        text += pl;
    } else {
        const char *last = NULL, *p = text;
        while ((p = strstr(p, "[/INST]")))
            last = p++;
        if (last) text = last + 7;
    }
    while (*text == ' ' || *text == '\n' || *text == '\r' || *text == '\t')
        text++;
    return text;
}

static cJSON *raw_parse(struct gw_llm_call *c, int status, const char *body, size_t len,
                        const char **err)
{
    if (status < 200 || status > 299) return gw_llm_error_from_reply(status, body, len);
    cJSON *j = gw_json_parse(body, len);
    const cJSON *item = j;
    if (cJSON_IsObject(j) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "data")))
        item = cJSON_GetObjectItemCaseSensitive(j, "data");
    if (cJSON_IsArray(item)) item = cJSON_GetArrayItem(item, 0);
    const char *text = gw_json_str(item, "generated_text");
    if (!text) {
        cJSON_Delete(j);
        *err = "upstream reply has no generated_text";
        return NULL;
    }
    text = strip_prompt(c, text);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "id", gw_llm_new_id(c->arena, "chatcmpl-"));
    cJSON_AddStringToObject(out, "object",
                            c->route == GW_LLM_CHAT ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(out, "created", (double)c->created);
    cJSON_AddStringToObject(out, "model", c->model ? c->model : "");
    cJSON *choices = cJSON_AddArrayToObject(out, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    if (c->route == GW_LLM_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(ch, "text", text);
    }
    cJSON_AddStringToObject(ch, "finish_reason", "stop");
    cJSON_Delete(j);
    return out;
}

static cJSON *llama2_parse(struct gw_llm_call *c, int status, const char *body, size_t len,
                           const char **err)
{
    switch (c->opt->llama2_format) {
    case GW_LLM_FMT_OLLAMA:
        return gw_llm_ollama_parse(c, status, body, len, err);
    case GW_LLM_FMT_RAW:
        return raw_parse(c, status, body, len, err);
    default:
        return gw_llm_openai_parse(c, status, body, len, err);
    }
}

static int llama2_stream(struct gw_llm_call *c, const char *event, const char *data, size_t len,
                         struct evbuffer *out)
{
    if (c->opt->llama2_format == GW_LLM_FMT_OLLAMA)
        return gw_llm_ollama_stream_frame(c, event, data, len, out);
    return gw_llm_openai_stream_frame(c, event, data, len, out);
}

const struct gw_llm_provider gw_llm_llama2 = {
    .name = "llama2",
    .auth_header = "Authorization",
    .auth_bearer = 1,
    .validate = llama2_validate,
    .build_request = llama2_build,
    .parse_response = llama2_parse,
    .stream_frame = llama2_stream,
};
