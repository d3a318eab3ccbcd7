/*
 * Ollama's native API (/api/chat, /api/generate, /api/embed), used by the
 * llama2 and mistral providers with format "ollama". Sampling goes in an
 * `options` object with Ollama's names (num_predict for max_tokens),
 * images as bare base64 strings beside the text, tool-call arguments as
 * JSON objects rather than strings; streams are NDJSON, one object a line.
 */
#include <string.h>

#include "gw_arena.h"
#include "llm.h"

static void copy_item(cJSON *dst, const char *dkey, const cJSON *src, const char *skey)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, skey);
    if (v && !cJSON_IsNull(v)) cJSON_AddItemToObject(dst, dkey, cJSON_Duplicate(v, 1));
}

/* OpenAI content (string or parts) -> Ollama text + images. */
static int ollama_content(struct gw_llm_call *c, const cJSON *content, cJSON *msg, const char **err)
{
    if (cJSON_IsString(content)) {
        cJSON_AddStringToObject(msg, "content", content->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        cJSON_AddStringToObject(msg, "content", "");
        return 0;
    }
    size_t cap = 1, n = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const char *t = gw_json_str(part, "text");
        if (t) cap += strlen(t) + 1;
    }
    char *text = gw_alloc(c->arena, cap);
    text[0] = '\0';
    cJSON *images = NULL;
    cJSON_ArrayForEach(part, content)
    {
        const char *type = gw_json_str(part, "type");
        if (type && strcmp(type, "image_url") == 0) {
            const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            const char *url = cJSON_IsString(iu) ? iu->valuestring : gw_json_str(iu, "url");
            const char *mt, *data;
            if (gw_llm_data_uri(c->arena, url, &mt, &data) < 0) {
                *err = "this provider accepts images only as base64 data: URIs";
                return -1;
            }
            if (!images) images = cJSON_AddArrayToObject(msg, "images");
            cJSON_AddItemToArray(images, cJSON_CreateString(data));
        } else {
            const char *t = gw_json_str(part, "text");
            if (t) {
                size_t tl = strlen(t);
                if (n) text[n++] = '\n';
                memcpy(text + n, t, tl);
                n += tl;
                text[n] = '\0';
            }
        }
    }
    cJSON_AddStringToObject(msg, "content", text);
    return 0;
}

static int ollama_messages(struct gw_llm_call *c, const cJSON *messages, cJSON *req,
                           const char **err)
{
    if (!cJSON_IsArray(messages)) {
        *err = "'messages' must be an array";
        return -1;
    }
    cJSON *out = cJSON_AddArrayToObject(req, "messages");
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const char *role = gw_json_str(m, "role");
        if (!role) {
            *err = "each message needs a 'role'";
            return -1;
        }
        cJSON *msg = cJSON_CreateObject();
        cJSON_AddItemToArray(out, msg);
        cJSON_AddStringToObject(msg, "role", strcmp(role, "developer") == 0 ? "system" : role);
        if (ollama_content(c, cJSON_GetObjectItemCaseSensitive(m, "content"), msg, err) < 0)
            return -1;
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (cJSON_IsArray(calls)) {
            cJSON *oc = cJSON_AddArrayToObject(msg, "tool_calls");
            const cJSON *call;
            cJSON_ArrayForEach(call, calls)
            {
                const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
                const char *args = gw_json_str(fn, "arguments");
                cJSON *parsed = args ? cJSON_Parse(args) : cJSON_CreateObject();
                if (!cJSON_IsObject(parsed)) {
                    cJSON_Delete(parsed);
                    *err = "tool_calls[].function.arguments must be a JSON object";
                    return -1;
                }
                cJSON *f = cJSON_CreateObject();
                const char *name = gw_json_str(fn, "name");
                cJSON_AddStringToObject(f, "name", name ? name : "");
                cJSON_AddItemToObject(f, "arguments", parsed);
                cJSON *oc1 = cJSON_CreateObject();
                cJSON_AddItemToObject(oc1, "function", f);
                cJSON_AddItemToArray(oc, oc1);
            }
        }
        const char *tname = gw_json_str(m, "name");
        if (tname && strcmp(role, "tool") == 0) cJSON_AddStringToObject(msg, "tool_name", tname);
    }
    return 0;
}

int gw_llm_ollama_build_body(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                             const char **err)
{
    if (c->route == GW_LLM_PRESERVE) {
        /* The client already speaks Ollama: its body goes as sent. */
        up->body = gw_json_print(c->arena, body, &up->body_len);
        up->ndjson = 1;
        return 0;
    }
    double n;
    if (c->route != GW_LLM_EMBEDDINGS && gw_json_num(body, "n", &n) && n > 1) {
        *err = "Ollama cannot return several choices (n > 1)";
        return -1;
    }
    cJSON *req = cJSON_CreateObject();
    if (c->model) cJSON_AddStringToObject(req, "model", c->model);
    int rc = 0;
    if (c->route == GW_LLM_CHAT) {
        rc = ollama_messages(c, cJSON_GetObjectItemCaseSensitive(body, "messages"), req, err);
        /* Ollama has no tool_choice: "none" is honoured by not offering the
         * tools; "required" or a named function cannot be enforced. */
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
        if (!(cJSON_IsString(tc) && strcmp(tc->valuestring, "none") == 0))
            copy_item(req, "tools", body, "tools");
    } else if (c->route == GW_LLM_COMPLETIONS) {
        const char *prompt = gw_json_str(body, "prompt");
        if (!prompt) {
            *err = "'prompt' must be a string";
            rc = -1;
        } else {
            cJSON_AddStringToObject(req, "prompt", prompt);
        }
    } else if (c->route == GW_LLM_EMBEDDINGS) {
        copy_item(req, "input", body, "input");
        copy_item(req, "dimensions", body, "dimensions");
    }
    if (rc < 0) {
        cJSON_Delete(req);
        return -1;
    }
    if (c->route == GW_LLM_CHAT) {
        /* Ollama's /api/chat takes OpenAI's names for these (top level). */
        copy_item(req, "logprobs", body, "logprobs");
        copy_item(req, "top_logprobs", body, "top_logprobs");
    }
    if (c->route != GW_LLM_EMBEDDINGS) {
        cJSON_AddBoolToObject(req, "stream", c->stream);
        cJSON *opts = cJSON_AddObjectToObject(req, "options");
        const struct gw_llm_options *o = c->opt;
        gw_llm_add_max_tokens(opts, "num_predict", o, body);
        if (o && o->temperature.set)
            cJSON_AddNumberToObject(opts, "temperature", o->temperature.v);
        else
            copy_item(opts, "temperature", body, "temperature");
        if (o && o->top_p.set)
            cJSON_AddNumberToObject(opts, "top_p", o->top_p.v);
        else
            copy_item(opts, "top_p", body, "top_p");
        if (o && o->top_k.set)
            cJSON_AddNumberToObject(opts, "top_k", o->top_k.v);
        else
            copy_item(opts, "top_k", body, "top_k");
        copy_item(opts, "seed", body, "seed");
        copy_item(opts, "frequency_penalty", body, "frequency_penalty");
        copy_item(opts, "presence_penalty", body, "presence_penalty");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
        if (cJSON_IsString(stop)) {
            cJSON *a = cJSON_AddArrayToObject(opts, "stop");
            cJSON_AddItemToArray(a, cJSON_CreateString(stop->valuestring));
        } else if (cJSON_IsArray(stop)) {
            cJSON_AddItemToObject(opts, "stop", cJSON_Duplicate(stop, 1));
        }
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
        const char *rft = gw_json_str(rf, "type");
        if (rft && strcmp(rft, "json_object") == 0) {
            cJSON_AddStringToObject(req, "format", "json");
        } else if (rft && strcmp(rft, "json_schema") == 0) {
            const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
            const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
            if (cJSON_IsObject(schema))
                cJSON_AddItemToObject(req, "format", cJSON_Duplicate(schema, 1));
        }
    }
    up->body = gw_json_print(c->arena, req, &up->body_len);
    up->ndjson = 1;
    cJSON_Delete(req);
    return 0;
}

static void ollama_usage(struct gw_llm_call *c, const cJSON *j)
{
    double p = 0, q = 0;
    int hp = gw_json_tokens(j, "prompt_eval_count", &p);
    int hq = gw_json_tokens(j, "eval_count", &q);
    if (!hp && !hq) return;
    c->usage.present = 1;
    c->usage.prompt = (long)p;
    c->usage.completion = (long)q;
    c->usage.total = (long)p + (long)q;
}

/* Ollama tool calls -> OpenAI tool_calls (ids made up: Ollama has none). */
static cJSON *ollama_tool_calls(struct gw_llm_call *c, const cJSON *calls, int with_index)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *call;
    cJSON_ArrayForEach(call, calls)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
        const char *name = gw_json_str(fn, "name");
        if (!name) continue;
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        cJSON *tc = cJSON_CreateObject();
        if (with_index) cJSON_AddNumberToObject(tc, "index", c->n_tool_calls);
        c->n_tool_calls++;
        const char *id = gw_json_str(call, "id");
        cJSON_AddStringToObject(tc, "id", id ? id : gw_llm_new_id(c->arena, "call_"));
        cJSON_AddStringToObject(tc, "type", "function");
        cJSON *f = cJSON_AddObjectToObject(tc, "function");
        cJSON_AddStringToObject(f, "name", name);
        if (cJSON_IsString(args))
            cJSON_AddStringToObject(f, "arguments", args->valuestring);
        else
            cJSON_AddStringToObject(f, "arguments",
                                    args ? gw_json_print(c->arena, args, NULL) : "{}");
        cJSON_AddItemToArray(out, tc);
    }
    return out;
}

/* Ollama's logprobs (asked with logprobs / top_logprobs) are a list of
 * {token, logprob, bytes, top_logprobs}, OpenAI's ChatCompletionTokenLogprob
 * already: they become the choice's logprobs.content. */
static void add_logprobs(cJSON *choice, const cJSON *reply)
{
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(reply, "logprobs");
    if (!cJSON_IsArray(lp)) return;
    cJSON *o = cJSON_AddObjectToObject(choice, "logprobs");
    cJSON_AddItemToObject(o, "content", cJSON_Duplicate(lp, 1));
}

cJSON *gw_llm_ollama_parse(struct gw_llm_call *c, int status, const char *body, size_t len,
                           const char **err)
{
    cJSON *j;
    if (gw_llm_reply_parse(status, body, len, &j, err)) return j;
    const char *eerr = gw_json_str(j, "error");
    if (eerr) {
        *err = gw_sprintf(c->arena, "upstream reported an error: %s", eerr);
        cJSON_Delete(j);
        return NULL;
    }
    const char *model = gw_json_str(j, "model");
    if (model && *model) c->response_model = gw_strdup(c->arena, model);
    ollama_usage(c, j);
    cJSON *out;
    if (c->route == GW_LLM_EMBEDDINGS) {
        const cJSON *embs = cJSON_GetObjectItemCaseSensitive(j, "embeddings");
        out = cJSON_CreateObject();
        if (!cJSON_IsArray(embs)) goto bad;
        cJSON_AddStringToObject(out, "object", "list");
        cJSON *data = cJSON_AddArrayToObject(out, "data");
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, embs)
        {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "object", "embedding");
            cJSON_AddNumberToObject(d, "index", i++);
            cJSON_AddItemToObject(d, "embedding", cJSON_Duplicate(e, 1));
            cJSON_AddItemToArray(data, d);
        }
        cJSON_AddStringToObject(out, "model", model ? model : c->model ? c->model : "");
        cJSON *u = cJSON_AddObjectToObject(out, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", (double)c->usage.prompt);
        cJSON_AddNumberToObject(u, "total_tokens", (double)c->usage.prompt);
        cJSON_Delete(j);
        return out;
    }
    cJSON *ch;
    out = gw_llm_reply_new(c, NULL, model, &ch);
    const char *finish = gw_llm_finish_reason(gw_json_str(j, "done_reason"));
    if (c->route == GW_LLM_CHAT) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
        if (!cJSON_IsObject(msg)) goto bad;
        const char *content = gw_json_str(msg, "content");
        cJSON *m = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
        if (cJSON_GetArraySize(calls) > 0) {
            if (content && *content)
                cJSON_AddStringToObject(m, "content", content);
            else
                cJSON_AddNullToObject(m, "content");
            cJSON_AddItemToObject(m, "tool_calls", ollama_tool_calls(c, calls, 0));
            finish = "tool_calls";
        } else {
            cJSON_AddStringToObject(m, "content", content ? content : "");
        }
        add_logprobs(ch, j);
    } else {
        const char *text = gw_json_str(j, "response");
        if (!text) goto bad;
        cJSON_AddStringToObject(ch, "text", text);
    }
    cJSON_AddStringToObject(ch, "finish_reason", finish);
    if (c->usage.present) cJSON_AddItemToObject(out, "usage", gw_llm_usage_json(c));
    cJSON_Delete(j);
    return out;
bad:
    cJSON_Delete(out);
    cJSON_Delete(j);
    *err = "upstream reply is not an Ollama reply for this route";
    return NULL;
}

int gw_llm_ollama_stream_frame(struct gw_llm_call *c, const char *event, const char *data,
                               size_t len, struct evbuffer *out)
{
    if (c->done_sent) return 0;
    cJSON *j = gw_llm_frame_json(c, data, len, out, "upstream sent a stream line that is not JSON");
    if (!j) return -1;
    const char *eerr = gw_json_str(j, "error");
    if (eerr) {
        gw_llm_emit_error(c, out, eerr);
        cJSON_Delete(j);
        return -1;
    }
    const char *model = gw_json_str(j, "model");
    if (model && *model && !c->response_model) c->response_model = gw_strdup(c->arena, model);
    gw_llm_emit_role(c, out);
    const char *text;
    const cJSON *calls = NULL;
    if (c->route == GW_LLM_COMPLETIONS) {
        text = gw_json_str(j, "response");
    } else {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
        text = gw_json_str(msg, "content");
        calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    }
    int had_tools = c->n_tool_calls > 0;
    if ((text && *text) || cJSON_GetArraySize(calls) > 0) {
        cJSON *delta, *choice;
        cJSON *ch = gw_llm_chunk_new(c, &delta, &choice);
        if (c->route == GW_LLM_COMPLETIONS) {
            cJSON_AddStringToObject(choice, "text", text);
        } else {
            if (text && *text) cJSON_AddStringToObject(delta, "content", text);
            if (cJSON_GetArraySize(calls) > 0)
                cJSON_AddItemToObject(delta, "tool_calls", ollama_tool_calls(c, calls, 1));
            add_logprobs(choice, j);
        }
        gw_llm_emit_json(out, ch);
        cJSON_Delete(ch);
    }
    had_tools = had_tools || c->n_tool_calls > 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "done"))) {
        ollama_usage(c, j);
        const char *fr = gw_llm_finish_reason(gw_json_str(j, "done_reason"));
        gw_llm_emit_finish(c, out, had_tools ? "tool_calls" : fr);
        gw_llm_emit_tail(c, out);
    }
    cJSON_Delete(j);
    return 0;
}
