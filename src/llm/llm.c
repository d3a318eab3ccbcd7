/*
 * The provider table and what every provider shares: error objects in
 * OpenAI's shape, the OpenAI chunk skeleton, usage and cost, tolerant JSON
 * accessors. Provider replies are untrusted input: every accessor here
 * accepts a missing key or a wrong type.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "gw_arena.h"
#include "gw_json.h"
#include "llm.h"
#include "gw_num_text.h"
#include "request_id.h"

/* The one list of providers: X(name) for each `gw_llm_<name>` in
 * src/llm/providers/. It makes the table below and the names the plugin
 * offers as model.provider (the enum must be a constant array). */
#define GW_LLM_PROVIDER_LIST(X) X(openai) X(azure) X(anthropic) X(mistral) X(llama2)

#define GW_LLM_DECLARE(n) extern const struct gw_llm_provider gw_llm_##n;
GW_LLM_PROVIDER_LIST(GW_LLM_DECLARE)
#define GW_LLM_ENTRY(n) &gw_llm_##n,
const struct gw_llm_provider *const gw_llm_providers[] = {GW_LLM_PROVIDER_LIST(GW_LLM_ENTRY) NULL};
#define GW_LLM_NAME(n) #n,
const char *const gw_llm_provider_names[] = {GW_LLM_PROVIDER_LIST(GW_LLM_NAME) NULL};

const char *const gw_llm_route_names[] = {"llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings",
                                          "preserve", NULL};

const struct gw_llm_provider *gw_llm_provider_find(const char *name)
{
    for (size_t i = 0; name && gw_llm_providers[i]; i++)
        if (strcmp(gw_llm_providers[i]->name, name) == 0) return gw_llm_providers[i];
    return NULL;
}

void gw_llm_call_init(struct gw_llm_call *c, struct gw_arena *arena,
                      const struct gw_llm_provider *p, enum gw_llm_route route,
                      const struct gw_llm_options *opt, const char *model)
{
    memset(c, 0, sizeof(*c));
    c->arena = arena;
    c->provider = p;
    c->route = route;
    c->opt = opt;
    c->model = model;
    c->usage.cached = -1;
    c->created = (long)time(NULL);
}

const char *gw_json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int gw_json_num(const cJSON *obj, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return 0;
    *out = v->valuedouble;
    return 1;
}

int gw_json_tokens(const cJSON *obj, const char *key, double *out)
{
    double v;
    if (!gw_json_num(obj, key, &v) || v < 0 || v > 1e12) return 0;
    *out = v;
    return 1;
}

/* cJSON prints every number with sprintf("%1.15g") and reads it back with
 * sscanf to check the round trip: callgrind put that at ~10% of the
 * instructions of an ai-proxy request (six numbers a request). Integers
 * are printed here instead: for the print only, they become raw nodes
 * (flagged as references, so cJSON never frees our text), then go back
 * with their whole type: flags such as cJSON_StringIsConst (the key is not
 * cJSON's to free) must survive the print. */
struct int_node {
    cJSON *node;
    int type;
    char *valuestring;
};
struct int_nodes {
    struct int_node *v;
    size_t n, cap;
};

static char *print_int(struct gw_arena *a, long long v)
{
    char tmp[25]; /* a sign before the 24 bytes gw_u64_text uses */
    uint64_t u = v < 0 ? 0ULL - (uint64_t)v : (uint64_t)v;
    char *p = gw_u64_text(tmp + 1, u);
    if (v < 0) *--p = '-';
    return gw_strndup(a, p, (size_t)(tmp + sizeof(tmp) - 1 - p));
}

static void ints_to_raw(struct gw_arena *a, cJSON *node, struct int_nodes *out)
{
    for (cJSON *c = node; c; c = c->next) {
        if ((c->type & 0xFF) == cJSON_Number) {
            double d = c->valuedouble;
            if (d >= -1e15 && d <= 1e15 && d == (double)(long long)d) {
                if (out->n == out->cap) {
                    size_t cap = out->cap ? out->cap * 2 : 16;
                    struct int_node *v = gw_alloc(a, cap * sizeof(*v));
                    if (out->n) memcpy(v, out->v, out->n * sizeof(*v));
                    out->v = v;
                    out->cap = cap;
                }
                out->v[out->n++] = (struct int_node){c, c->type, c->valuestring};
                c->valuestring = print_int(a, (long long)d);
                c->type = cJSON_Raw | cJSON_IsReference | (c->type & cJSON_StringIsConst);
            }
        } else if (c->child) {
            ints_to_raw(a, c->child, out);
        }
    }
}

static void raw_to_ints(struct int_nodes *nodes)
{
    for (size_t i = 0; i < nodes->n; i++) {
        nodes->v[i].node->type = nodes->v[i].type;
        nodes->v[i].node->valuestring = nodes->v[i].valuestring;
    }
}

/* Printed straight into the arena when it fits the last size seen on this
 * thread (doubled): no malloc/realloc/free churn nor a copy per document.
 * A document larger than the guess goes the slow way once. */
char *gw_json_print(struct gw_arena *a, const cJSON *json, size_t *len)
{
    static _Thread_local size_t guess = 1024;
    struct int_nodes ints = {0};
    if (json->child) ints_to_raw(a, json->child, &ints);
    char *buf = gw_alloc(a, guess);
    size_t n;
    if (cJSON_PrintPreallocated((cJSON *)json, buf, (int)guess, 0)) {
        n = strlen(buf);
    } else {
        char *s = cJSON_PrintUnformatted(json);
        if (!s) abort(); /* cJSON fails only on allocation failure */
        n = strlen(s);
        buf = gw_strndup(a, s, n);
        cJSON_free(s);
    }
    raw_to_ints(&ints);
    /* cJSON's own estimate needs slack over the final length. */
    size_t want = n * 2 + 64;
    if (want > guess && want <= 1024 * 1024) guess = want;
    if (len) *len = n;
    return buf;
}

/* One JSON text (RFC 8259 2): a value with only whitespace after it. A
 * reply of several values (NDJSON where JSON was promised) is not read as
 * its first one, which would cut the answer short without a word. */
cJSON *gw_json_parse(const char *body, size_t len)
{
    if (!body || len == 0) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j) return NULL;
    for (const char *p = end; p && p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(j);
            return NULL;
        }
    }
    return j;
}

const char *gw_llm_new_id(struct gw_arena *a, const char *prefix)
{
    /* Ids only need to be unique: the request-id generator, 96 bits of it. */
    char hex[33];
    gw_request_id_new(hex);
    hex[24] = '\0';
    return gw_sprintf(a, "%s%s", prefix, hex);
}

const char *gw_llm_error_type(int status)
{
    switch (status) {
    case 400:
    case 404:
    case 409:
    case 413:
    case 422:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

cJSON *gw_llm_error_object(int status, const char *type, const char *message, const char *code)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", message ? message : "");
    cJSON_AddStringToObject(e, "type", type ? type : gw_llm_error_type(status));
    cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    return root;
}

/* An error reason that is not a plain string: FastAPI's (vLLM, Mistral's
 * 422s) {"detail":[{"loc":[...],"msg":"Field required",...}, ...]}, or any
 * other JSON. The "msg" of each item, joined with "; ", or else the value
 * as compact JSON; NULL for nothing usable. malloc'd: the caller free()s. */
static char *reason_text(const cJSON *v)
{
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    if (cJSON_IsObject(v)) {
        const cJSON *inner = cJSON_GetObjectItemCaseSensitive(v, "detail");
        if (!inner) inner = cJSON_GetObjectItemCaseSensitive(v, "message");
        if (!inner) inner = cJSON_GetObjectItemCaseSensitive(v, "msg");
        if (inner) return reason_text(inner);
    }
    if (cJSON_IsArray(v)) {
        size_t n = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            const char *m = gw_json_str(it, "msg");
            if (!m) break;
            n += strlen(m) + 2;
        }
        if (n && !it) {
            char *out = malloc(n + 1), *p = out;
            if (!out) return NULL;
            cJSON_ArrayForEach(it, v)
            {
                if (p != out) {
                    memcpy(p, "; ", 2);
                    p += 2;
                }
                const char *m = gw_json_str(it, "msg");
                size_t k = strlen(m);
                memcpy(p, m, k);
                p += k;
            }
            *p = '\0';
            return out;
        }
    }
    /* cJSON's allocation may be the request arena's (json_alloc.c): copy. */
    char *printed = cJSON_PrintUnformatted(v);
    char *out = printed ? strdup(printed) : NULL;
    cJSON_free(printed);
    return out;
}

cJSON *gw_llm_error_from_reply(int status, const char *body, size_t len)
{
    cJSON *j = gw_json_parse(body, len);
    const char *type = NULL, *code = NULL;
    char *msg = NULL;
    if (cJSON_IsObject(j)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (cJSON_IsObject(e)) {
            msg = reason_text(cJSON_GetObjectItemCaseSensitive(e, "message"));
            type = gw_json_str(e, "type");
            code = gw_json_str(e, "code");
        } else if (cJSON_IsString(e)) {
            msg = strdup(e->valuestring); /* Ollama, Hugging Face */
        }
        /* Mistral's {"object":"error","message":...}, FastAPI's {"detail":...} */
        if (!msg) msg = reason_text(cJSON_GetObjectItemCaseSensitive(j, "message"));
        if (!msg) msg = reason_text(cJSON_GetObjectItemCaseSensitive(j, "detail"));
        if (!type) type = gw_json_str(j, "type");
    }
    char buf[64];
    if (!msg) snprintf(buf, sizeof(buf), "upstream returned HTTP %d", status);
    cJSON *out = gw_llm_error_object(status, type, msg ? msg : buf, code);
    free(msg);
    cJSON_Delete(j);
    return out;
}

int gw_llm_reply_parse(int status, const char *body, size_t len, cJSON **j, const char **err)
{
    if (status < 200 || status > 299) {
        *j = gw_llm_error_from_reply(status, body, len);
        return 1;
    }
    *j = gw_json_parse(body, len);
    if (cJSON_IsObject(*j)) return 0;
    cJSON_Delete(*j);
    *j = NULL;
    *err = "upstream reply is not a JSON object";
    return 1;
}

cJSON *gw_llm_reply_new(struct gw_llm_call *c, const char *id, const char *model, cJSON **choice)
{
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "id", id ? id : gw_llm_new_id(c->arena, "chatcmpl-"));
    cJSON_AddStringToObject(out, "object",
                            c->route == GW_LLM_CHAT ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(out, "created", (double)c->created);
    cJSON_AddStringToObject(out, "model", model ? model : c->model ? c->model : "");
    cJSON *choices = cJSON_AddArrayToObject(out, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    *choice = ch;
    return out;
}

cJSON *gw_llm_frame_json(struct gw_llm_call *c, const char *data, size_t len, struct evbuffer *out,
                         const char *not_json)
{
    cJSON *j = gw_json_parse(data, len);
    if (cJSON_IsObject(j)) return j;
    cJSON_Delete(j);
    /* A last frame that does not parse was cut by the close. */
    gw_llm_emit_error(c, out,
                      c->at_eof ? "upstream stream ended before it was complete" : not_json);
    return NULL;
}

int gw_llm_is_done_marker(const char *data, size_t len)
{
    return len == 6 && memcmp(data, "[DONE]", 6) == 0;
}

void gw_llm_emit_raw(struct evbuffer *out, const char *data, size_t len)
{
    /* An event's data that came on several data: lines holds their \n
     * (the SSE parser joins them): each line needs its own "data: " again,
     * or the client reads a line with no field and loses the JSON. */
    const char *nl;
    while ((nl = memchr(data, '\n', len))) {
        evbuffer_add(out, "data: ", 6);
        evbuffer_add(out, data, (size_t)(nl - data) + 1);
        len -= (size_t)(nl - data) + 1;
        data = nl + 1;
    }
    evbuffer_add(out, "data: ", 6);
    evbuffer_add(out, data, len);
    evbuffer_add(out, "\n\n", 2);
}

void gw_llm_emit_json(struct evbuffer *out, const cJSON *chunk)
{
    /* Through gw_json_print for its integer printing; the scratch arena
     * comes from the thread's cache (its size is the cached one), so this
     * costs no malloc unless the chunk outgrows the first block. */
    struct gw_arena *scratch = gw_arena_new(GW_ARENA_CACHED_BLOCK);
    size_t n;
    char *s = gw_json_print(scratch, chunk, &n);
    gw_llm_emit_raw(out, s, n);
    gw_arena_free(scratch);
}

/* A JSON string literal with its quotes, written at dst. */
static size_t json_escape(char *dst, const char *s)
{
    char *p = dst;
    *p++ = '"';
    p = gw_json_escape_to(p, s);
    *p++ = '"';
    return (size_t)(p - dst);
}

/* Text deltas are most of a stream's chunks: written without a cJSON tree,
 * byte for byte what gw_llm_chunk_new + cJSON would print. */
static void emit_chat_text(struct gw_llm_call *c, struct evbuffer *out, const char *text,
                           const char *json, size_t json_len)
{
    const char *model = c->response_model ? c->response_model : c->model ? c->model : "";
    if (!c->text_prefix || c->text_prefix_model != model) {
        if (!c->chunk_id) c->chunk_id = gw_llm_new_id(c->arena, "chatcmpl-");
        char *id = gw_alloc(c->arena, gw_json_escaped_len(c->chunk_id) + 3);
        id[json_escape(id, c->chunk_id)] = '\0';
        char *m = gw_alloc(c->arena, gw_json_escaped_len(model) + 3);
        m[json_escape(m, model)] = '\0';
        c->text_prefix =
            gw_sprintf(c->arena,
                       "data: {\"id\":%s,\"object\":\"chat.completion.chunk\",\"created\":%ld,"
                       "\"model\":%s,\"choices\":[{\"index\":0,\"delta\":{\"content\":",
                       id, c->created, m);
        c->text_prefix_len = strlen(c->text_prefix);
        c->text_prefix_model = model;
    }
    static const char tail[] = "},\"finish_reason\":null}]}\n\n";
    size_t need =
        c->text_prefix_len + (text ? gw_json_escaped_len(text) : json_len) + 2 + sizeof(tail);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) < 1) return;
    char *p = v.iov_base;
    memcpy(p, c->text_prefix, c->text_prefix_len);
    p += c->text_prefix_len;
    if (text) {
        p += json_escape(p, text);
    } else {
        *p++ = '"';
        memcpy(p, json, json_len);
        p += json_len;
        *p++ = '"';
    }
    memcpy(p, tail, sizeof(tail) - 1);
    p += sizeof(tail) - 1;
    v.iov_len = (size_t)(p - (char *)v.iov_base);
    evbuffer_commit_space(out, &v, 1);
}

void gw_llm_emit_text(struct gw_llm_call *c, struct evbuffer *out, const char *text)
{
    if (!text || !*text) return;
    if (c->route != GW_LLM_COMPLETIONS && c->created >= 0) {
        emit_chat_text(c, out, text, NULL, 0);
        return;
    }
    cJSON *delta, *choice;
    cJSON *ch = gw_llm_chunk_new(c, &delta, &choice);
    if (c->route == GW_LLM_COMPLETIONS)
        cJSON_AddStringToObject(choice, "text", text);
    else
        cJSON_AddStringToObject(delta, "content", text);
    gw_llm_emit_json(out, ch);
    cJSON_Delete(ch);
}

int gw_llm_emit_text_json(struct gw_llm_call *c, struct evbuffer *out, const char *json, size_t len)
{
    if (c->route == GW_LLM_COMPLETIONS || c->created < 0) return -1;
    if (len) emit_chat_text(c, out, NULL, json, len);
    return 0;
}

void gw_llm_emit_done(struct gw_llm_call *c, struct evbuffer *out)
{
    if (c->done_sent) return;
    evbuffer_add(out, "data: [DONE]\n\n", 14);
    c->done_sent = 1;
}

void gw_llm_emit_error(struct gw_llm_call *c, struct evbuffer *out, const char *message)
{
    cJSON *e = gw_llm_error_object(502, "api_error", message, NULL);
    gw_llm_emit_json(out, e);
    cJSON_Delete(e);
    c->errored = 1;
    gw_llm_emit_done(c, out);
}

cJSON *gw_llm_chunk_new(struct gw_llm_call *c, cJSON **delta, cJSON **choice)
{
    if (!c->chunk_id) c->chunk_id = gw_llm_new_id(c->arena, "chatcmpl-");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddStringToObject(ch, "id", c->chunk_id);
    cJSON_AddStringToObject(
        ch, "object", c->route == GW_LLM_COMPLETIONS ? "text_completion" : "chat.completion.chunk");
    cJSON_AddNumberToObject(ch, "created", (double)c->created);
    cJSON_AddStringToObject(ch, "model",
                            c->response_model ? c->response_model
                            : c->model        ? c->model
                                              : "");
    cJSON *choices = cJSON_AddArrayToObject(ch, "choices");
    if (delta || choice) {
        cJSON *one = cJSON_CreateObject();
        cJSON_AddNumberToObject(one, "index", 0);
        cJSON *d = NULL;
        if (c->route != GW_LLM_COMPLETIONS) d = cJSON_AddObjectToObject(one, "delta");
        cJSON_AddNullToObject(one, "finish_reason");
        cJSON_AddItemToArray(choices, one);
        if (delta) *delta = d;
        if (choice) *choice = one;
    }
    return ch;
}

void gw_llm_emit_role(struct gw_llm_call *c, struct evbuffer *out)
{
    if (c->role_sent) return;
    c->role_sent = 1;
    if (c->route == GW_LLM_COMPLETIONS) return;
    cJSON *delta;
    cJSON *ch = gw_llm_chunk_new(c, &delta, NULL);
    cJSON_AddStringToObject(delta, "role", "assistant");
    cJSON_AddStringToObject(delta, "content", "");
    gw_llm_emit_json(out, ch);
    cJSON_Delete(ch);
}

void gw_llm_emit_finish(struct gw_llm_call *c, struct evbuffer *out, const char *finish_reason)
{
    if (c->finish_sent) return;
    gw_llm_emit_role(c, out);
    c->finish_sent = 1;
    cJSON *choice;
    cJSON *ch = gw_llm_chunk_new(c, NULL, &choice);
    if (c->route == GW_LLM_COMPLETIONS) cJSON_AddStringToObject(choice, "text", "");
    cJSON_ReplaceItemInObject(choice, "finish_reason",
                              cJSON_CreateString(finish_reason ? finish_reason : "stop"));
    gw_llm_emit_json(out, ch);
    cJSON_Delete(ch);
}

void gw_llm_emit_tail(struct gw_llm_call *c, struct evbuffer *out)
{
    if (c->done_sent) return;
    if (c->include_usage) {
        cJSON *ch = gw_llm_chunk_new(c, NULL, NULL);
        cJSON_AddItemToObject(ch, "usage", gw_llm_usage_json(c));
        gw_llm_emit_json(out, ch);
        cJSON_Delete(ch);
    }
    gw_llm_emit_done(c, out);
}

int gw_llm_stream_end(struct gw_llm_call *c, struct evbuffer *out)
{
    if (c->done_sent) return c->errored ? -1 : 0;
    gw_llm_emit_error(c, out, "upstream stream ended before it was complete");
    return -1;
}

cJSON *gw_llm_usage_json(const struct gw_llm_call *c)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)c->usage.prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)c->usage.completion);
    cJSON_AddNumberToObject(u, "total_tokens", (double)c->usage.total);
    if (c->usage.cached >= 0) {
        cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
        cJSON_AddNumberToObject(d, "cached_tokens", (double)c->usage.cached);
    }
    return u;
}

void gw_llm_usage_from_openai(struct gw_llm_call *c, const cJSON *usage)
{
    double v;
    if (!cJSON_IsObject(usage)) return;
    int any = 0;
    if (gw_json_tokens(usage, "prompt_tokens", &v)) c->usage.prompt = (long)v, any = 1;
    if (gw_json_tokens(usage, "completion_tokens", &v)) c->usage.completion = (long)v, any = 1;
    if (gw_json_tokens(usage, "total_tokens", &v))
        c->usage.total = (long)v, any = 1;
    else
        c->usage.total = c->usage.prompt + c->usage.completion;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    if (gw_json_tokens(d, "cached_tokens", &v)) c->usage.cached = (long)v;
    if (any) c->usage.present = 1;
}

double gw_llm_cost(const struct gw_llm_call *c)
{
    double cost = 0;
    if (!c->opt) return 0;
    if (c->opt->input_cost.set) cost += (double)c->usage.prompt * c->opt->input_cost.v / 1e6;
    if (c->opt->output_cost.set) cost += (double)c->usage.completion * c->opt->output_cost.v / 1e6;
    return cost;
}

const char *gw_llm_url(struct gw_llm_call *c, const char *origin, const char *default_path)
{
    const struct gw_llm_options *o = c->opt;
    if (o && o->upstream_url && *o->upstream_url) return o->upstream_url;
    const char *path = o && o->upstream_path && *o->upstream_path ? o->upstream_path : default_path;
    return gw_sprintf(c->arena, "%s%s", origin, path);
}

static void set_number(cJSON *obj, const char *key, double v)
{
    cJSON *n = cJSON_CreateNumber(v);
    if (cJSON_HasObjectItem(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, n);
    else
        cJSON_AddItemToObject(obj, key, n);
}

void gw_llm_add_num(cJSON *dst, const char *key, const struct gw_opt_num *opt, const cJSON *body)
{
    double v;
    if (opt->set)
        cJSON_AddNumberToObject(dst, key, opt->v);
    else if (gw_json_num(body, key, &v))
        cJSON_AddNumberToObject(dst, key, v);
}

void gw_llm_add_max_tokens(cJSON *dst, const char *key, const struct gw_llm_options *o,
                           const cJSON *body)
{
    double v;
    if (o && o->max_tokens.set)
        cJSON_AddNumberToObject(dst, key, o->max_tokens.v);
    else if (gw_json_num(body, "max_tokens", &v) || gw_json_num(body, "max_completion_tokens", &v))
        cJSON_AddNumberToObject(dst, key, v);
}

void gw_llm_add_stop(cJSON *dst, const char *key, const cJSON *body)
{
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (cJSON_IsString(stop)) {
        cJSON *a = cJSON_AddArrayToObject(dst, key);
        cJSON_AddItemToArray(a, cJSON_CreateString(stop->valuestring));
    } else if (cJSON_IsArray(stop) && cJSON_GetArraySize(stop) > 0) {
        cJSON_AddItemToObject(dst, key, cJSON_Duplicate(stop, 1));
    }
}

void gw_llm_apply_sampling(const struct gw_llm_options *o, cJSON *req, int use_completion_tokens)
{
    if (!o) return;
    if (o->max_tokens.set)
        set_number(req, use_completion_tokens ? "max_completion_tokens" : "max_tokens",
                   o->max_tokens.v);
    if (o->temperature.set) set_number(req, "temperature", o->temperature.v);
    if (o->top_p.set) set_number(req, "top_p", o->top_p.v);
}

int gw_llm_build(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                 const char **err)
{
    memset(up, 0, sizeof(*up));
    up->method = "POST";
    if (!cJSON_IsObject(body)) {
        *err = "request body must be a JSON object";
        return -1;
    }
    c->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"));
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    c->include_usage =
        c->stream && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    const char *enc = gw_json_str(body, "encoding_format");
    c->embed_base64 = c->route == GW_LLM_EMBEDDINGS && enc && strcmp(enc, "base64") == 0;
    return c->provider->build_request(c, body, up, err);
}

void gw_llm_embeddings_to_base64(const struct gw_llm_call *c, cJSON *reply)
{
    if (!c->embed_base64) return;
    cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(reply, "data"))
    {
        const cJSON *vec = cJSON_GetObjectItemCaseSensitive(item, "embedding");
        if (!cJSON_IsArray(vec)) continue; /* already base64, or nothing */
        int n = cJSON_GetArraySize(vec);
        unsigned char *raw = gw_alloc(c->arena, (size_t)n * 4 + 1);
        unsigned char *p = raw;
        const cJSON *x;
        cJSON_ArrayForEach(x, vec)
        {
            if (!cJSON_IsNumber(x)) return; /* not a vector: leave the reply as it is */
            float f = (float)x->valuedouble;
            uint32_t bits;
            memcpy(&bits, &f, 4);
            for (int i = 0; i < 4; i++)
                *p++ = (unsigned char)(bits >> (8 * i));
        }
        char *b64 = gw_alloc(c->arena, ((size_t)n * 4 + 2) / 3 * 4 + 1);
        EVP_EncodeBlock((unsigned char *)b64, raw, n * 4);
        cJSON_ReplaceItemInObjectCaseSensitive(item, "embedding", cJSON_CreateString(b64));
    }
}

int gw_llm_data_uri(struct gw_arena *a, const char *url, const char **media_type, const char **data)
{
    if (!url || strncmp(url, "data:", 5) != 0) return -1;
    const char *comma = strchr(url, ',');
    if (!comma) return -1;
    const char *meta = url + 5;
    size_t mlen = (size_t)(comma - meta);
    if (mlen < 7 || memcmp(meta + mlen - 7, ";base64", 7) != 0) return -1;
    const char *semi = memchr(meta, ';', mlen);
    *media_type = gw_strndup(a, meta, (size_t)(semi - meta));
    *data = gw_strdup(a, comma + 1);
    return 0;
}

/* Anthropic (end_turn, stop_sequence, max_tokens, tool_use, refusal,
 * pause_turn), Ollama (stop, length, load), OpenAI's own values. */
const char *gw_llm_finish_reason(const char *r)
{
    if (!r) return "stop";
    if (strcmp(r, "max_tokens") == 0 || strcmp(r, "length") == 0 ||
        strcmp(r, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(r, "tool_use") == 0 || strcmp(r, "tool_calls") == 0) return "tool_calls";
    if (strcmp(r, "refusal") == 0 || strcmp(r, "content_filter") == 0) return "content_filter";
    return "stop";
}

/* A stream from a whole reply: role+content+tool_calls in one delta per
 * choice, then a finish chunk per choice, the usage chunk when the client
 * asked for it, [DONE]. Tool calls get the index a stream would carry. */
void gw_llm_reply_to_chunks(struct gw_llm_call *c, const cJSON *reply, struct evbuffer *out)
{
    const char *id = gw_json_str(reply, "id");
    const char *model = gw_json_str(reply, "model");
    if (id && !c->chunk_id) c->chunk_id = gw_strdup(c->arena, id);
    if (model && *model && !c->response_model) c->response_model = gw_strdup(c->arena, model);
    double created;
    if (gw_json_num(reply, "created", &created)) c->created = (long)created;
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(reply, "choices");
    for (int pass = 0; pass < 2; pass++) {
        const cJSON *choice;
        cJSON_ArrayForEach(choice, choices)
        {
            cJSON *ch = gw_llm_chunk_new(c, NULL, NULL);
            cJSON *one = cJSON_CreateObject();
            cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(ch, "choices"), one);
            double idx = 0;
            gw_json_num(choice, "index", &idx);
            cJSON_AddNumberToObject(one, "index", idx);
            const char *fr = gw_json_str(choice, "finish_reason");
            if (c->route == GW_LLM_COMPLETIONS) {
                const char *t = gw_json_str(choice, "text");
                cJSON_AddStringToObject(one, "text", pass == 0 && t ? t : "");
            } else {
                cJSON *d = cJSON_AddObjectToObject(one, "delta");
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(choice, "message");
                if (pass == 0) {
                    const char *t = gw_json_str(m, "content");
                    cJSON_AddStringToObject(d, "role", "assistant");
                    cJSON_AddStringToObject(d, "content", t ? t : "");
                    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
                    if (cJSON_GetArraySize(calls) > 0) {
                        cJSON *tc = cJSON_Duplicate(calls, 1);
                        int i = 0;
                        cJSON *call;
                        cJSON_ArrayForEach(call, tc)
                        {
                            cJSON_DeleteItemFromObjectCaseSensitive(call, "index");
                            cJSON_AddNumberToObject(call, "index", i++);
                        }
                        cJSON_AddItemToObject(d, "tool_calls", tc);
                    }
                }
            }
            if (pass == 1)
                cJSON_AddStringToObject(one, "finish_reason", fr ? fr : "stop");
            else
                cJSON_AddNullToObject(one, "finish_reason");
            gw_llm_emit_json(out, ch);
            cJSON_Delete(ch);
        }
    }
    c->role_sent = c->finish_sent = 1;
    gw_llm_usage_from_openai(c, cJSON_GetObjectItemCaseSensitive(reply, "usage"));
    gw_llm_emit_tail(c, out);
}
