/*
 * Anthropic: the Messages API (/v1/messages) for chat, the legacy Text
 * Completions API (/v1/complete) for llm/v1/completions, as Kong maps them.
 *
 * What differs from OpenAI and is translated here: the system prompt is a
 * top-level field; content is a list of typed blocks (text, image with a
 * base64 or url source, tool_use, tool_result); tool results travel in a
 * user message; max_tokens is required; stop reasons, usage (input tokens
 * exclude cached ones) and the stream's event model all have other names.
 */
#include <ctype.h>
#include <string.h>

#include <event2/buffer.h>

#include "gw_arena.h"
#include "llm/llm.h"

#define ANTHROPIC_DEFAULT_VERSION "2023-06-01"
#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096

/* Text of an OpenAI content value: the string, or its text parts joined. */
static char *content_text(struct gw_arena *a, const cJSON *content)
{
    if (cJSON_IsString(content)) return content->valuestring;
    size_t n = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const char *t = gw_json_str(part, "text");
        if (t) n += strlen(t) + 1;
    }
    char *s = gw_alloc(a, n + 1), *p = s;
    cJSON_ArrayForEach(part, content)
    {
        const char *t = gw_json_str(part, "text");
        if (!t) continue;
        if (p != s) *p++ = '\n';
        size_t tl = strlen(t);
        memcpy(p, t, tl);
        p += tl;
    }
    *p = '\0';
    return s;
}

/* OpenAI content parts -> Anthropic content blocks. */
static cJSON *content_blocks(struct gw_llm_call *c, const cJSON *content, const char **err)
{
    cJSON *blocks = cJSON_CreateArray();
    if (cJSON_IsString(content)) {
        if (*content->valuestring) {
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "type", "text");
            cJSON_AddStringToObject(b, "text", content->valuestring);
            cJSON_AddItemToArray(blocks, b);
        }
        return blocks;
    }
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const char *type = gw_json_str(part, "type");
        cJSON *b = cJSON_CreateObject();
        if (type && strcmp(type, "image_url") == 0) {
            const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            const char *url = cJSON_IsString(iu) ? iu->valuestring : gw_json_str(iu, "url");
            const char *mt, *data;
            if (!url) {
                cJSON_Delete(b);
                cJSON_Delete(blocks);
                *err = "image_url part without a url";
                return NULL;
            }
            cJSON_AddStringToObject(b, "type", "image");
            cJSON *src = cJSON_AddObjectToObject(b, "source");
            if (gw_llm_data_uri(c->arena, url, &mt, &data) == 0) {
                cJSON_AddStringToObject(src, "type", "base64");
                cJSON_AddStringToObject(src, "media_type", mt);
                cJSON_AddStringToObject(src, "data", data);
            } else {
                cJSON_AddStringToObject(src, "type", "url");
                cJSON_AddStringToObject(src, "url", url);
            }
        } else if (type && strcmp(type, "file") == 0) {
            /* A PDF sent inline is an Anthropic document block; what else
             * OpenAI takes (file ids, other types) has no Anthropic form:
             * refused rather than dropped, or the model would answer
             * about a file it never saw. */
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(part, "file");
            const char *mt, *data;
            if (gw_llm_data_uri(c->arena, gw_json_str(f, "file_data"), &mt, &data) != 0 ||
                strcmp(mt, "application/pdf") != 0) {
                cJSON_Delete(b);
                cJSON_Delete(blocks);
                *err = "provider anthropic takes a file part only as inline PDF data "
                       "(file.file_data: data:application/pdf;base64,...)";
                return NULL;
            }
            cJSON_AddStringToObject(b, "type", "document");
            cJSON *src = cJSON_AddObjectToObject(b, "source");
            cJSON_AddStringToObject(src, "type", "base64");
            cJSON_AddStringToObject(src, "media_type", mt);
            cJSON_AddStringToObject(src, "data", data);
        } else {
            /* text, or an assistant's refusal; a part with no type is text */
            int refusal = type && strcmp(type, "refusal") == 0;
            int textual = !type || refusal || strcmp(type, "text") == 0;
            const char *t = textual ? gw_json_str(part, refusal ? "refusal" : "text") : NULL;
            if (!t) {
                cJSON_Delete(b);
                cJSON_Delete(blocks);
                *err = textual ? "a text content part needs its 'text'"
                               : gw_sprintf(c->arena,
                                            "content part type '%s' is not supported by "
                                            "provider anthropic",
                                            type);
                return NULL;
            }
            cJSON_AddStringToObject(b, "type", "text");
            cJSON_AddStringToObject(b, "text", t);
        }
        cJSON_AddItemToArray(blocks, b);
    }
    return blocks;
}

static cJSON *tool_use_blocks(const cJSON *calls, cJSON *blocks, const char **err)
{
    const cJSON *call;
    cJSON_ArrayForEach(call, calls)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
        const char *name = gw_json_str(fn, "name");
        const char *id = gw_json_str(call, "id");
        const char *args = gw_json_str(fn, "arguments");
        cJSON *input = args && *args ? cJSON_Parse(args) : cJSON_CreateObject();
        if (!name || !id || !cJSON_IsObject(input)) {
            cJSON_Delete(input);
            *err = "assistant tool_calls need id, function.name and JSON object arguments";
            return NULL;
        }
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", "tool_use");
        cJSON_AddStringToObject(b, "id", id);
        cJSON_AddStringToObject(b, "name", name);
        cJSON_AddItemToObject(b, "input", input);
        cJSON_AddItemToArray(blocks, b);
    }
    return blocks;
}

/* messages[] -> system + Anthropic messages. Consecutive tool results are
 * merged into one user message, which is what Anthropic expects after an
 * assistant turn with several tool_use blocks. */
static int convert_messages(struct gw_llm_call *c, const cJSON *messages, cJSON *req,
                            const char **err)
{
    if (!cJSON_IsArray(messages)) {
        *err = "'messages' must be an array";
        return -1;
    }
    struct evbuffer *sys = evbuffer_new();
    cJSON *out = cJSON_CreateArray();
    cJSON *tool_results = NULL; /* content of the open tool-result message */
    const cJSON *m;
    int rc = 0;
    cJSON_ArrayForEach(m, messages)
    {
        const char *role = gw_json_str(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!role) {
            *err = "each message needs a 'role'";
            rc = -1;
            break;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            const char *t = content_text(c->arena, content);
            if (evbuffer_get_length(sys)) evbuffer_add(sys, "\n", 1);
            evbuffer_add(sys, t, strlen(t));
            continue;
        }
        if (strcmp(role, "tool") == 0) {
            const char *id = gw_json_str(m, "tool_call_id");
            if (!id) {
                *err = "tool messages need a 'tool_call_id'";
                rc = -1;
                break;
            }
            if (!tool_results) {
                cJSON *um = cJSON_CreateObject();
                cJSON_AddStringToObject(um, "role", "user");
                tool_results = cJSON_AddArrayToObject(um, "content");
                cJSON_AddItemToArray(out, um);
            }
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "type", "tool_result");
            cJSON_AddStringToObject(b, "tool_use_id", id);
            cJSON_AddStringToObject(b, "content", content_text(c->arena, content));
            cJSON_AddItemToArray(tool_results, b);
            continue;
        }
        tool_results = NULL;
        if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0) continue; /* function */
        cJSON *am = cJSON_CreateObject();
        cJSON_AddItemToArray(out, am);
        cJSON_AddStringToObject(am, "role", role);
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (cJSON_IsString(content) && cJSON_GetArraySize(calls) == 0) {
            cJSON_AddStringToObject(am, "content", content->valuestring);
            continue;
        }
        cJSON *blocks = content_blocks(c, content, err);
        if (!blocks) {
            rc = -1;
            break;
        }
        cJSON_AddItemToObject(am, "content", blocks);
        if (strcmp(role, "assistant") == 0 && cJSON_IsArray(calls) &&
            !tool_use_blocks(calls, blocks, err)) {
            rc = -1;
            break;
        }
    }
    if (rc == 0) {
        size_t n = evbuffer_get_length(sys);
        if (n) {
            char *s = gw_alloc(c->arena, n + 1);
            evbuffer_remove(sys, s, n);
            s[n] = '\0';
            cJSON_AddStringToObject(req, "system", s);
        }
        cJSON_AddItemToObject(req, "messages", out);
    } else {
        cJSON_Delete(out);
    }
    evbuffer_free(sys);
    return rc;
}

static int convert_tools(const cJSON *body, cJSON *req, const char **err)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    const cJSON *parallel = cJSON_GetObjectItemCaseSensitive(body, "parallel_tool_calls");
    if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0) {
        cJSON *out = cJSON_AddArrayToObject(req, "tools");
        const cJSON *t;
        cJSON_ArrayForEach(t, tools)
        {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
            const char *name = gw_json_str(fn, "name");
            if (!name) {
                *err = "tools[].function.name is required";
                return -1;
            }
            cJSON *at = cJSON_CreateObject();
            cJSON_AddStringToObject(at, "name", name);
            const char *desc = gw_json_str(fn, "description");
            if (desc) cJSON_AddStringToObject(at, "description", desc);
            const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
            cJSON *schema =
                cJSON_IsObject(params) ? cJSON_Duplicate(params, 1) : cJSON_CreateObject();
            /* Anthropic insists on an object schema; OpenAI allows {}. */
            if (!gw_json_str(schema, "type")) {
                cJSON_DeleteItemFromObjectCaseSensitive(schema, "type");
                cJSON_AddStringToObject(schema, "type", "object");
            }
            cJSON_AddItemToObject(at, "input_schema", schema);
            cJSON_AddItemToArray(out, at);
        }
    }
    cJSON *tc = NULL;
    if (cJSON_IsString(choice)) {
        const char *s = choice->valuestring;
        tc = cJSON_CreateObject();
        cJSON_AddStringToObject(tc, "type",
                                strcmp(s, "required") == 0 ? "any"
                                : strcmp(s, "none") == 0   ? "none"
                                                           : "auto");
    } else if (cJSON_IsObject(choice)) {
        const char *name =
            gw_json_str(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name");
        if (!name) {
            *err = "tool_choice.function.name is required";
            return -1;
        }
        tc = cJSON_CreateObject();
        cJSON_AddStringToObject(tc, "type", "tool");
        cJSON_AddStringToObject(tc, "name", name);
    }
    if (cJSON_IsFalse(parallel) && cJSON_HasObjectItem(req, "tools")) {
        if (!tc) {
            tc = cJSON_CreateObject();
            cJSON_AddStringToObject(tc, "type", "auto");
        }
        if (strcmp(gw_json_str(tc, "type"), "none") != 0)
            cJSON_AddTrueToObject(tc, "disable_parallel_tool_use");
    }
    if (tc) cJSON_AddItemToObject(req, "tool_choice", tc);
    return 0;
}

/* OpenAI's response_format, by the workaround Anthropic documents for JSON
 * output ("tool use" JSON mode): a tool whose input_schema is the schema,
 * forced through tool_choice; the reply's tool input becomes the message
 * content (parse/stream below). Anthropic's native output_config.format
 * exists only for Claude 4.5+ models and would fail on the others (the
 * claude-3-5 of our example config), while forced tool use works on every
 * model with tools. With the client's own tools present the model must
 * call one of them or ours (tool_choice any), unless the client forced
 * one of its own. */
#define ANTHROPIC_JSON_TOOL "json_response"
static int add_response_format(struct gw_llm_call *c, const cJSON *body, cJSON *req,
                               const char **err)
{
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    if (!rf || cJSON_IsNull(rf)) return 0;
    const char *type = gw_json_str(rf, "type");
    if (!type) {
        *err = "response_format.type is required";
        return -1;
    }
    if (strcmp(type, "text") == 0) return 0;
    cJSON *schema;
    const char *desc = NULL, *name = NULL;
    if (strcmp(type, "json_object") == 0) {
        schema = cJSON_CreateObject();
        cJSON_AddStringToObject(schema, "type", "object");
    } else if (strcmp(type, "json_schema") == 0) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (!cJSON_IsObject(s)) {
            *err = "response_format.json_schema.schema must be a JSON schema object";
            return -1;
        }
        const char *st = gw_json_str(s, "type");
        if (st && strcmp(st, "object") != 0) {
            *err = "response_format.json_schema.schema must describe an object";
            return -1;
        }
        schema = cJSON_Duplicate(s, 1);
        if (!st) {
            cJSON_DeleteItemFromObjectCaseSensitive(schema, "type");
            cJSON_AddStringToObject(schema, "type", "object");
        }
        desc = gw_json_str(js, "description");
        name = gw_json_str(js, "name");
    } else {
        *err = "response_format.type must be text, json_object or json_schema";
        return -1;
    }
    cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    if (!tools) tools = cJSON_AddArrayToObject(req, "tools");
    int n_client = cJSON_GetArraySize(tools);
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        const char *tn = gw_json_str(t, "name");
        if (tn && strcmp(tn, ANTHROPIC_JSON_TOOL) == 0) {
            cJSON_Delete(schema);
            *err = "the tool name " ANTHROPIC_JSON_TOOL " is reserved with response_format";
            return -1;
        }
    }
    cJSON *tool = cJSON_CreateObject();
    cJSON_AddStringToObject(tool, "name", ANTHROPIC_JSON_TOOL);
    if (!desc)
        desc = gw_sprintf(c->arena,
                          "Give your final answer%s%s by calling this tool: its input is the "
                          "answer, a JSON object.",
                          name ? " as " : "", name ? name : "");
    cJSON_AddStringToObject(tool, "description", desc);
    cJSON_AddItemToObject(tool, "input_schema", schema);
    cJSON_AddItemToArray(tools, tool);

    cJSON *tc = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    const char *tct = gw_json_str(tc, "type");
    cJSON *choice = cJSON_CreateObject();
    if (n_client == 0 || (tct && strcmp(tct, "none") == 0)) {
        cJSON_AddStringToObject(choice, "type", "tool");
        cJSON_AddStringToObject(choice, "name", ANTHROPIC_JSON_TOOL);
    } else if (tct && strcmp(tct, "tool") == 0) {
        cJSON_Delete(choice);
        choice = NULL; /* the client forced one of its tools */
    } else {
        cJSON_AddStringToObject(choice, "type", "any");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tc, "disable_parallel_tool_use")))
            cJSON_AddTrueToObject(choice, "disable_parallel_tool_use");
    }
    if (choice) {
        cJSON_DeleteItemFromObjectCaseSensitive(req, "tool_choice");
        cJSON_AddItemToObject(req, "tool_choice", choice);
    }
    c->json_tool = ANTHROPIC_JSON_TOOL;
    return 0;
}

/* Sampling: plugin options win over the client (as Kong does). */
static void add_sampling(struct gw_llm_call *c, const cJSON *body, cJSON *req, const char *max_key)
{
    const struct gw_llm_options *o = c->opt;
    double v;
    double max = ANTHROPIC_DEFAULT_MAX_TOKENS;
    /* max_tokens is required here, and max_completion_tokens wins. */
    if (o->max_tokens.set)
        max = o->max_tokens.v;
    else if (gw_json_num(body, "max_completion_tokens", &v) || gw_json_num(body, "max_tokens", &v))
        max = v;
    cJSON_AddNumberToObject(req, max_key, max);
    gw_llm_add_num(req, "temperature", &o->temperature, body);
    gw_llm_add_num(req, "top_p", &o->top_p, body);
    gw_llm_add_num(req, "top_k", &o->top_k, body);
    gw_llm_add_stop(req, "stop_sequences", body);
    cJSON_AddBoolToObject(req, "stream", c->stream);
}

/* Anthropic has no embeddings API: such a route is a config error, not a
 * 400 on every request. */
static int anthropic_validate(enum gw_llm_route route, const struct gw_llm_options *o,
                              const char **field, const char **msg)
{
    (void)o;
    if (route == GW_LLM_EMBEDDINGS) {
        *field = "route_type";
        *msg = "llm/v1/embeddings is not offered by Anthropic";
        return -1;
    }
    return 0;
}

static int anthropic_build(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                           const char **err)
{
    const struct gw_llm_options *o = c->opt;
    up->headers[0][0] = "anthropic-version";
    up->headers[0][1] = o->anthropic_version && *o->anthropic_version ? o->anthropic_version
                                                                      : ANTHROPIC_DEFAULT_VERSION;
    up->n_headers = 1;
    if (c->route == GW_LLM_PRESERVE) {
        /* A native client picked its API version; the default only fills
         * in for one that sent none. A configured version still wins. */
        if (!(o->anthropic_version && *o->anthropic_version)) up->headers_if_absent = 1u;
        up->url = gw_llm_url(c, "https://api.anthropic.com", "/v1/messages");
        up->body = gw_json_print(c->arena, body, &up->body_len);
        return 0;
    }
    if (!c->model || !*c->model) {
        *err = "a model is required (model.name in the plugin, or 'model' in the request)";
        return -1;
    }
    double n;
    if (gw_json_num(body, "n", &n) && n > 1) {
        *err = "Anthropic cannot return several choices (n > 1)";
        return -1;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "logprobs"))) {
        /* Dropped, a client reading choices[].logprobs would fail later. */
        *err = "Anthropic does not return log probabilities (logprobs)";
        return -1;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", c->model);
    if (c->route == GW_LLM_COMPLETIONS) {
        up->url = gw_llm_url(c, "https://api.anthropic.com", "/v1/complete");
        const char *prompt = gw_json_str(body, "prompt");
        if (!prompt) {
            cJSON_Delete(req);
            *err = "'prompt' must be a string";
            return -1;
        }
        cJSON_AddStringToObject(req, "prompt",
                                gw_sprintf(c->arena, "\n\nHuman: %s\n\nAssistant:", prompt));
        add_sampling(c, body, req, "max_tokens_to_sample");
    } else {
        up->url = gw_llm_url(c, "https://api.anthropic.com", "/v1/messages");
        if (convert_messages(c, cJSON_GetObjectItemCaseSensitive(body, "messages"), req, err) < 0 ||
            convert_tools(body, req, err) < 0 || add_response_format(c, body, req, err) < 0) {
            cJSON_Delete(req);
            return -1;
        }
        add_sampling(c, body, req, "max_tokens");
        const char *user = gw_json_str(body, "user");
        if (user) {
            cJSON *md = cJSON_AddObjectToObject(req, "metadata");
            cJSON_AddStringToObject(md, "user_id", user);
        }
    }
    up->body = gw_json_print(c->arena, req, &up->body_len);
    cJSON_Delete(req);
    return 0;
}

/* Anthropic's input_tokens excludes cache reads and writes; OpenAI's
 * prompt_tokens includes cached tokens, so they are added back. */
static void read_usage(struct gw_llm_call *c, const cJSON *u)
{
    double v;
    if (!cJSON_IsObject(u)) return;
    int any = 0;
    long prompt = c->usage.prompt;
    if (gw_json_tokens(u, "input_tokens", &v)) {
        prompt = (long)v;
        any = 1;
        double cr = 0, cw = 0;
        if (gw_json_tokens(u, "cache_read_input_tokens", &cr)) c->usage.cached = (long)cr;
        gw_json_tokens(u, "cache_creation_input_tokens", &cw);
        prompt += (long)cr + (long)cw;
    }
    if (gw_json_tokens(u, "output_tokens", &v)) {
        c->usage.completion = (long)v;
        any = 1;
    }
    if (!any) return;
    c->usage.prompt = prompt;
    c->usage.total = c->usage.prompt + c->usage.completion;
    c->usage.present = 1;
}

static cJSON *anthropic_parse(struct gw_llm_call *c, int status, const char *body, size_t len,
                              const char **err)
{
    cJSON *j;
    if (gw_llm_reply_parse(status, body, len, &j, err)) return j;
    const char *model = gw_json_str(j, "model");
    if (model && *model) c->response_model = gw_strdup(c->arena, model);
    read_usage(c, cJSON_GetObjectItemCaseSensitive(j, "usage"));
    if (c->route == GW_LLM_PRESERVE) return j; /* read for usage only */
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsObject(e)) {
        const char *m = gw_json_str(e, "message");
        *err = gw_sprintf(c->arena, "upstream reported an error: %s", m ? m : "(no message)");
        cJSON_Delete(j);
        return NULL;
    }
    cJSON *ch;
    cJSON *out = gw_llm_reply_new(c, gw_json_str(j, "id"), model, &ch);
    const char *finish = gw_llm_finish_reason(gw_json_str(j, "stop_reason"));
    if (c->route == GW_LLM_COMPLETIONS) {
        const char *text = gw_json_str(j, "completion");
        if (!text) goto bad;
        cJSON_AddStringToObject(ch, "text", text);
    } else {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
        if (!cJSON_IsArray(content)) goto bad;
        struct evbuffer *text = evbuffer_new();
        cJSON *calls = cJSON_CreateArray();
        const char *json_answer = NULL; /* response_format: the json_tool's input */
        const cJSON *b;
        cJSON_ArrayForEach(b, content)
        {
            const char *type = gw_json_str(b, "type");
            if (!type) continue;
            if (strcmp(type, "text") == 0) {
                const char *t = gw_json_str(b, "text");
                if (t) evbuffer_add(text, t, strlen(t));
            } else if (strcmp(type, "tool_use") == 0) {
                const char *tid = gw_json_str(b, "id"), *name = gw_json_str(b, "name");
                if (!tid || !name) continue;
                const cJSON *input = cJSON_GetObjectItemCaseSensitive(b, "input");
                if (c->json_tool && strcmp(name, c->json_tool) == 0) {
                    json_answer = input ? gw_json_print(c->arena, input, NULL) : "{}";
                    continue;
                }
                cJSON *tc = cJSON_CreateObject();
                cJSON_AddStringToObject(tc, "id", tid);
                cJSON_AddStringToObject(tc, "type", "function");
                cJSON *f = cJSON_AddObjectToObject(tc, "function");
                cJSON_AddStringToObject(f, "name", name);
                cJSON_AddStringToObject(f, "arguments",
                                        input ? gw_json_print(c->arena, input, NULL) : "{}");
                cJSON_AddItemToArray(calls, tc);
            }
        }
        cJSON *m = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        size_t n = evbuffer_get_length(text);
        char *s = gw_alloc(c->arena, n + 1);
        evbuffer_remove(text, s, n);
        s[n] = '\0';
        evbuffer_free(text);
        if (json_answer) {
            /* The answer is the JSON; a preamble would make it unparsable. */
            s = (char *)json_answer;
            n = strlen(s);
            if (cJSON_GetArraySize(calls) == 0 && strcmp(finish, "tool_calls") == 0)
                finish = "stop";
        }
        if (cJSON_GetArraySize(calls) > 0) {
            if (n)
                cJSON_AddStringToObject(m, "content", s);
            else
                cJSON_AddNullToObject(m, "content");
            cJSON_AddItemToObject(m, "tool_calls", calls);
        } else {
            cJSON_AddStringToObject(m, "content", s);
            cJSON_Delete(calls);
        }
    }
    cJSON_AddStringToObject(ch, "finish_reason", finish);
    if (c->usage.present) cJSON_AddItemToObject(out, "usage", gw_llm_usage_json(c));
    cJSON_Delete(j);
    return out;
bad:
    cJSON_Delete(out);
    cJSON_Delete(j);
    *err = "upstream reply is not an Anthropic message";
    return NULL;
}

/* A tool_calls delta: the first one of a call carries id and name, the
 * following ones only argument fragments, all under the same index. */
static void emit_tool_delta(struct gw_llm_call *c, struct evbuffer *out, int index, const char *id,
                            const char *name, const char *args)
{
    cJSON *delta;
    cJSON *ch = gw_llm_chunk_new(c, &delta, NULL);
    cJSON *calls = cJSON_AddArrayToObject(delta, "tool_calls");
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddItemToArray(calls, tc);
    cJSON_AddNumberToObject(tc, "index", index);
    if (id) {
        cJSON_AddStringToObject(tc, "id", id);
        cJSON_AddStringToObject(tc, "type", "function");
    }
    cJSON *f = cJSON_AddObjectToObject(tc, "function");
    if (name) cJSON_AddStringToObject(f, "name", name);
    cJSON_AddStringToObject(f, "arguments", args ? args : "");
    gw_llm_emit_json(out, ch);
    cJSON_Delete(ch);
}

/* Is s[0..n) the body of a valid JSON string (no bare quote or control
 * character, only the escapes JSON has)? */
static int json_string_body(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == '"') return 0;
        if (ch != '\\') continue;
        if (++i >= n) return 0;
        if (s[i] == 'u') {
            for (int k = 1; k <= 4; k++)
                if (i + (size_t)k >= n || !isxdigit((unsigned char)s[i + (size_t)k])) return 0;
            i += 4;
        } else if (!strchr("\"\\/bfnrt", s[i]) || s[i] == '\0') {
            return 0;
        }
    }
    return 1;
}

/*
 * The frame of nearly every streamed token,
 *   {"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"..."}}
 * recognised without a JSON parse, its text passed on as the JSON string it
 * already is: callgrind had the parse and the tree at most of a stream's
 * cost. Returns 1 when handled, 0 for anything else (the full path).
 */
static int text_delta_fast(struct gw_llm_call *c, const char *data, size_t len,
                           struct evbuffer *out)
{
    static const char head[] = "{\"type\":\"content_block_delta\",\"index\":";
    static const char mid[] = ",\"delta\":{\"type\":\"text_delta\",\"text\":\"";
    const char *p = data, *end = data + len;
    if (c->route != GW_LLM_CHAT || c->created < 0) return 0; /* gw_llm_emit_text_json's cases */
    if (len < sizeof(head) + sizeof(mid) || memcmp(p, head, sizeof(head) - 1) != 0) return 0;
    p += sizeof(head) - 1;
    int idx = 0, digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 3) {
        idx = idx * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || idx >= 64 || c->block_tool[idx] != 0) return 0;
    if ((size_t)(end - p) < sizeof(mid) - 1 || memcmp(p, mid, sizeof(mid) - 1) != 0) return 0;
    p += sizeof(mid) - 1;
    if (end - p < 3 || memcmp(end - 3, "\"}}", 3) != 0) return 0;
    size_t n = (size_t)(end - 3 - p);
    if (!json_string_body(p, n)) return 0;
    gw_llm_emit_role(c, out);
    gw_llm_emit_text_json(c, out, p, n);
    return 1;
}

static int anthropic_stream(struct gw_llm_call *c, const char *event, const char *data, size_t len,
                            struct evbuffer *out)
{
    if (c->done_sent) return 0;
    if (text_delta_fast(c, data, len, out)) return 0;
    cJSON *j =
        gw_llm_frame_json(c, data, len, out, "upstream sent a stream event that is not JSON");
    if (!j) return -1;
    const char *type = gw_json_str(j, "type");
    if (!type) type = event ? event : "";
    int rc = 0;
    if (strcmp(type, "message_start") == 0) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
        const char *id = gw_json_str(msg, "id");
        const char *model = gw_json_str(msg, "model");
        if (id && !c->chunk_id) c->chunk_id = gw_strdup(c->arena, id);
        if (model && *model) c->response_model = gw_strdup(c->arena, model);
        read_usage(c, cJSON_GetObjectItemCaseSensitive(msg, "usage"));
        gw_llm_emit_role(c, out);
    } else if (strcmp(type, "content_block_start") == 0) {
        gw_llm_emit_role(c, out);
        double idx = -1;
        gw_json_num(j, "index", &idx);
        const cJSON *cb = cJSON_GetObjectItemCaseSensitive(j, "content_block");
        const char *bt = gw_json_str(cb, "type");
        const char *bname = gw_json_str(cb, "name");
        if (bt && strcmp(bt, "tool_use") == 0 && c->json_tool && bname &&
            strcmp(bname, c->json_tool) == 0) {
            /* response_format: this tool's input is the answer's content. */
            if (idx >= 0 && idx < 64) c->block_tool[(int)idx] = -1;
        } else if (bt && strcmp(bt, "tool_use") == 0) {
            int ti = c->n_tool_calls++;
            if (idx >= 0 && idx < 64) c->block_tool[(int)idx] = ti + 1;
            const char *id = gw_json_str(cb, "id");
            const char *name = gw_json_str(cb, "name");
            emit_tool_delta(c, out, ti, id ? id : gw_llm_new_id(c->arena, "toolu_"),
                            name ? name : "", "");
        } else if (bt && strcmp(bt, "text") == 0) {
            gw_llm_emit_text(c, out, gw_json_str(cb, "text"));
        }
    } else if (strcmp(type, "content_block_delta") == 0) {
        gw_llm_emit_role(c, out);
        double idx = -1;
        gw_json_num(j, "index", &idx);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "delta");
        const char *dt = gw_json_str(d, "type");
        if (dt && strcmp(dt, "text_delta") == 0) {
            gw_llm_emit_text(c, out, gw_json_str(d, "text"));
        } else if (dt && strcmp(dt, "input_json_delta") == 0) {
            int bti = idx >= 0 && idx < 64 ? c->block_tool[(int)idx] : 0;
            const char *pj = gw_json_str(d, "partial_json");
            if (bti == -1)
                gw_llm_emit_text(c, out, pj);
            else if (bti > 0 && pj && *pj) {
                emit_tool_delta(c, out, bti - 1, NULL, NULL, pj);
                c->block_args |= 1ull << (int)idx;
            }
        }
        /* thinking_delta, signature_delta: not part of the OpenAI API. */
    } else if (strcmp(type, "content_block_stop") == 0) {
        /* A tool called with no input streams no input_json_delta text (or
         * only ""): its arguments must still parse as JSON, as the whole
         * reply's "{}" does, or the client's JSON.parse throws. */
        double idx = -1;
        gw_json_num(j, "index", &idx);
        int bti = idx >= 0 && idx < 64 ? c->block_tool[(int)idx] : 0;
        if (bti > 0 && !(c->block_args & (1ull << (int)idx)))
            emit_tool_delta(c, out, bti - 1, NULL, NULL, "{}");
    } else if (strcmp(type, "message_delta") == 0) {
        read_usage(c, cJSON_GetObjectItemCaseSensitive(j, "usage"));
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "delta");
        const char *sr = gw_json_str(d, "stop_reason");
        if (sr) c->finish_reason = gw_llm_finish_reason(sr);
        /* Only the response_format tool was called: a plain answer. */
        if (c->json_tool && c->n_tool_calls == 0 && c->finish_reason &&
            strcmp(c->finish_reason, "tool_calls") == 0)
            c->finish_reason = "stop";
        gw_llm_emit_finish(c, out, c->finish_reason);
    } else if (strcmp(type, "message_stop") == 0) {
        gw_llm_emit_finish(c, out, c->finish_reason);
        gw_llm_emit_tail(c, out);
    } else if (strcmp(type, "completion") == 0) {
        /* Legacy Text Completions stream. */
        gw_llm_emit_role(c, out);
        const char *model = gw_json_str(j, "model");
        if (model && *model && !c->response_model) c->response_model = gw_strdup(c->arena, model);
        gw_llm_emit_text(c, out, gw_json_str(j, "completion"));
        const char *sr = gw_json_str(j, "stop_reason");
        if (sr) {
            gw_llm_emit_finish(c, out, gw_llm_finish_reason(sr));
            gw_llm_emit_tail(c, out);
        }
    } else if (strcmp(type, "error") == 0) {
        const char *m = gw_json_str(cJSON_GetObjectItemCaseSensitive(j, "error"), "message");
        gw_llm_emit_error(c, out, m ? m : "upstream stream error");
        rc = -1;
    }
    /* ping and unknown events: nothing to say. */
    cJSON_Delete(j);
    return rc;
}

const struct gw_llm_provider gw_llm_anthropic = {
    .name = "anthropic",
    .auth_header = "x-api-key",
    .auth_bearer = 0,
    .request_id_header = "request-id",
    .validate = anthropic_validate,
    .build_request = anthropic_build,
    .parse_response = anthropic_parse,
    .stream_frame = anthropic_stream,
};
