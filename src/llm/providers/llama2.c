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
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        /* Llama 2 reads text only: an image silently dropped would get an
         * answer about a picture the model never saw. */
        const cJSON *part;
        cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(m, "content"))
        {
            const char *pt = gw_json_str(part, "type");
            if (pt && strcmp(pt, "text") != 0) {
                *err = gw_sprintf(c->arena, "llama2_format raw takes text only (%s parts)", pt);
                return NULL;
            }
        }
    }
    struct evbuffer *b = evbuffer_new();
    struct evbuffer *sys = evbuffer_new();
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
    double n;
    if (gw_json_num(body, "n", &n) && n > 1) {
        *err = "llama2 raw servers return one choice (n > 1)";
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
    gw_llm_add_max_tokens(params, "max_new_tokens", o, body);
    gw_llm_add_num(params, "temperature", &o->temperature, body);
    if (o->top_k.set) cJSON_AddNumberToObject(params, "top_k", o->top_k.v);
    gw_llm_add_num(params, "top_p", &o->top_p, body);
    /* TGI's own parameters for what OpenAI clients send: stop sequences,
     * seed, and response_format as a JSON grammar (TGI >= 1.4.3). */
    gw_llm_add_stop(params, "stop", body);
    if (gw_json_num(body, "seed", &v)) cJSON_AddNumberToObject(params, "seed", v);
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    const char *rft = gw_json_str(rf, "type");
    const cJSON *schema = NULL;
    if (rft && strcmp(rft, "json_schema") == 0)
        schema = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(rf, "json_schema"), "schema");
    if ((rft && strcmp(rft, "json_object") == 0) || cJSON_IsObject(schema)) {
        cJSON *g = cJSON_AddObjectToObject(params, "grammar");
        cJSON_AddStringToObject(g, "type", "json");
        cJSON *value = schema ? cJSON_Duplicate(schema, 1) : cJSON_CreateObject();
        if (!schema) cJSON_AddStringToObject(value, "type", "object");
        cJSON_AddItemToObject(g, "value", value);
    }
    cJSON_AddBoolToObject(params, "stream", c->stream);
    if (c->stream) {
        /* TGI streams on /generate_stream, or on `/` with a top-level
         * "stream": true; details puts finish_reason and token counts in
         * the last event. */
        cJSON_AddTrueToObject(params, "details");
        cJSON_AddTrueToObject(req, "stream");
    }
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
        return gw_llm_openai_build_body(c, body, up, GW_LLM_USAGE_ASK, err);
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
    /* TGI's details (when the request or server asked for them) and the
     * `usage` object some raw servers add, as Kong reads it. */
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(item, "details");
    const char *finish = gw_llm_finish_reason(gw_json_str(details, "finish_reason"));
    gw_llm_usage_from_openai(
        c, cJSON_GetObjectItemCaseSensitive(cJSON_IsObject(j) ? j : item, "usage"));
    double gen;
    if (!c->usage.present && gw_json_tokens(details, "generated_tokens", &gen)) {
        c->usage.present = 1;
        c->usage.completion = (long)gen;
        c->usage.total = c->usage.prompt + c->usage.completion;
    }
    cJSON *ch;
    cJSON *out = gw_llm_reply_new(c, NULL, NULL, &ch);
    if (c->route == GW_LLM_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(ch, "text", text);
    }
    cJSON_AddStringToObject(ch, "finish_reason", finish);
    if (c->usage.present) cJSON_AddItemToObject(out, "usage", gw_llm_usage_json(c));
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

/* One piece of generated text as a content delta (chat) or a text chunk
 * (completions). The answer's leading blanks are dropped, as the buffered
 * reply drops them after the prompt. */
static void raw_emit_text(struct gw_llm_call *c, struct evbuffer *out, const char *text)
{
    if (!c->content_sent)
        while (*text == ' ' || *text == '\n' || *text == '\r' || *text == '\t')
            text++;
    if (!*text) return;
    c->content_sent = 1;
    gw_llm_emit_text(c, out, text);
}

/* TGI's stream: one event per generated token,
 * {"token":{"id","text","logprob","special"},"generated_text":null,...};
 * the last one also carries generated_text and, when details were asked,
 * details {finish_reason length|eos_token|stop_sequence, generated_tokens,
 * input_length}. Errors are {"error","error_type"}. Special tokens (</s>)
 * are not text. A server that sends only the final generated_text is
 * answered with that text, its echoed prompt stripped. */
static int raw_stream_frame(struct gw_llm_call *c, const char *data, size_t len,
                            struct evbuffer *out)
{
    if (c->done_sent) return 0;
    if (gw_llm_is_done_marker(data, len)) {
        gw_llm_emit_finish(c, out, "stop");
        gw_llm_emit_tail(c, out);
        return 0;
    }
    cJSON *j =
        gw_llm_frame_json(c, data, len, out, "upstream sent a stream event that is not JSON");
    if (!j) return -1;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (e && !cJSON_IsNull(e)) {
        const char *msg = cJSON_IsString(e) ? e->valuestring : gw_json_str(e, "message");
        gw_llm_emit_error(c, out, msg ? msg : "upstream reported an error");
        cJSON_Delete(j);
        return -1;
    }
    gw_llm_emit_role(c, out);
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "token");
    if (cJSON_IsObject(tok)) {
        c->usage.present = 1;
        c->usage.completion++; /* one event per token, until details say */
        const char *text = gw_json_str(tok, "text");
        if (text && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tok, "special")))
            raw_emit_text(c, out, text);
    }
    const char *gen = gw_json_str(j, "generated_text");
    if (gen) {
        if (!cJSON_IsObject(tok) && c->usage.completion == 0)
            raw_emit_text(c, out, strip_prompt(c, gen));
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "details");
        double v;
        if (gw_json_tokens(d, "generated_tokens", &v)) c->usage.completion = (long)v;
        if (gw_json_tokens(d, "input_length", &v)) c->usage.prompt = (long)v;
        c->usage.present = 1;
        gw_llm_emit_finish(c, out, gw_llm_finish_reason(gw_json_str(d, "finish_reason")));
    }
    c->usage.total = c->usage.prompt + c->usage.completion;
    if (gen) gw_llm_emit_tail(c, out);
    cJSON_Delete(j);
    return 0;
}

static int llama2_stream(struct gw_llm_call *c, const char *event, const char *data, size_t len,
                         struct evbuffer *out)
{
    switch (c->opt->llama2_format) {
    case GW_LLM_FMT_OLLAMA:
        return gw_llm_ollama_stream_frame(c, event, data, len, out);
    case GW_LLM_FMT_RAW:
        return raw_stream_frame(c, data, len, out);
    default:
        return gw_llm_openai_stream_frame(c, event, data, len, out);
    }
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
