/*
 * ai-proxy (Kong priority 770): one OpenAI-compatible endpoint in front of
 * OpenAI, Azure, Anthropic, Mistral, Llama/Ollama and OpenAI-compatible
 * servers. The translation is src/llm's; this file is the HTTP side: check
 * the client's request, point the upstream call at the provider with the
 * right credential, and turn the reply (whole, or frame by frame for
 * streams) back into OpenAI's shape, recording usage for the plugins and
 * log lines that follow.
 */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ai_proxy.h"
#include "yaml_node.h"

static const char *const streaming_modes[] = {"allow", "deny", "always", NULL};

/* An optional number: `set` tells 0 from absent. */
static int parse_opt_num(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    struct gw_opt_num *o = dst;
    int b;
    long l;
    double d;
    int kind = gw_node_plain_type(n, &b, &l, &d);
    if (kind == 2) d = (double)l;
    if ((kind != 2 && kind != 3) || !isfinite(d)) {
        gw_conf_error(cf, n, NULL, "expected a number");
        return -1;
    }
    o->set = 1;
    o->v = d;
    return 0;
}

/* Kong's model_options_schema (kong/llm/schemas/init.lua): the same types
 * and ranges, so that a value a provider would refuse on every request
 * (top_p 256 in an old Anthropic guide) is a load error instead. */
static int opt_checked(struct gw_conf *cf, const struct gw_node *n, void *dst, int integer,
                       double lo, double hi, int above_lo)
{
    if (parse_opt_num(cf, n, dst) < 0) return -1;
    double v = ((struct gw_opt_num *)dst)->v;
    if (integer && v != floor(v)) {
        gw_conf_error(cf, n, NULL, "expected an integer");
        return -1;
    }
    if (above_lo && !(v > lo)) {
        gw_conf_error(cf, n, NULL, "must be greater than %g", lo);
        return -1;
    }
    if (!above_lo && (v < lo || v > hi)) {
        gw_conf_error(cf, n, NULL, "must be between %g and %g", lo, hi);
        return -1;
    }
    return 0;
}
static int parse_max_tokens(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    return opt_checked(cf, n, dst, 1, -HUGE_VAL, HUGE_VAL, 0);
}
static int parse_temperature(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    return opt_checked(cf, n, dst, 0, 0, 5, 0);
}
static int parse_top_p(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    return opt_checked(cf, n, dst, 0, 0, 1, 0);
}
static int parse_top_k(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    return opt_checked(cf, n, dst, 1, 0, 500, 0);
}
static int parse_cost(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    return opt_checked(cf, n, dst, 0, 0, HUGE_VAL, 1);
}

#define OPT_NUM(member, parser)                                                                    \
    {                                                                                              \
        .name = #member, .type = GW_F_CUSTOM,                                                      \
        .offset = offsetof(struct ai_proxy_options, llm.member), .parse = parser                   \
    }
#define OPT_STR(member)                                                                            \
    {                                                                                              \
        .name = #member, .type = GW_F_STRING,                                                      \
        .offset = offsetof(struct ai_proxy_options, llm.member), .flags = 0                        \
    }

/* Kong's fields for providers and credentials sluice does not have (yet):
 * accepted at their defaults so that Kong's files and decK dumps load,
 * refused with a reason as soon as they ask for the feature (gw_schema.h). */
#define INERT(name_, def_, why_)                                                                   \
    {                                                                                              \
        .name = name_, .type = GW_F_INERT, .def = def_, .why = why_                                \
    }
#define INERT_RECORD(name_, schema_)                                                               \
    {                                                                                              \
        .name = name_, .type = GW_F_RECORD, .record = &schema_                                     \
    }
#define NO_PROVIDER(p) "for the " p " provider, which sluice does not have yet"

static const struct gw_field gemini_fields[] = {
    INERT("api_endpoint", NULL, NO_PROVIDER("gemini")),
    INERT("project_id", NULL, NO_PROVIDER("gemini")),
    INERT("location_id", NULL, NO_PROVIDER("gemini")),
    {0},
};
static const struct gw_schema gemini_schema = {.name = "gemini", .fields = gemini_fields};

static const struct gw_field bedrock_fields[] = {
    INERT("aws_region", NULL, NO_PROVIDER("bedrock")),
    INERT("aws_assume_role_arn", NULL, NO_PROVIDER("bedrock")),
    INERT("aws_role_session_name", NULL, NO_PROVIDER("bedrock")),
    INERT("aws_sts_endpoint_url", NULL, NO_PROVIDER("bedrock")),
    INERT("embeddings_normalize", "false", NO_PROVIDER("bedrock")),
    INERT("performance_config_latency", NULL, NO_PROVIDER("bedrock")),
    {0},
};
static const struct gw_schema bedrock_schema = {.name = "bedrock", .fields = bedrock_fields};

static const struct gw_field huggingface_fields[] = {
    INERT("use_cache", NULL, NO_PROVIDER("huggingface")),
    INERT("wait_for_model", NULL, NO_PROVIDER("huggingface")),
    {0},
};
static const struct gw_schema huggingface_schema = {.name = "huggingface",
                                                    .fields = huggingface_fields};

static const struct gw_field cohere_fields[] = {
    INERT("embedding_input_type", "classification", NO_PROVIDER("cohere")),
    INERT("wait_for_model", NULL, NO_PROVIDER("cohere")),
    {0},
};
static const struct gw_schema cohere_schema = {.name = "cohere", .fields = cohere_fields};

static const struct gw_field options_fields[] = {
    OPT_NUM(max_tokens, parse_max_tokens),
    OPT_NUM(temperature, parse_temperature),
    OPT_NUM(top_p, parse_top_p),
    OPT_NUM(top_k, parse_top_k),
    OPT_NUM(input_cost, parse_cost),
    OPT_NUM(output_cost, parse_cost),
    OPT_STR(upstream_url),
    OPT_STR(upstream_path),
    OPT_STR(anthropic_version),
    OPT_STR(azure_instance),
    OPT_STR(azure_api_version),
    OPT_STR(azure_deployment_id),
    {GW_FIELD(struct ai_proxy_options, llama2_format, GW_F_STRING, 0, NULL)},
    {GW_FIELD(struct ai_proxy_options, mistral_format, GW_F_STRING, 0, NULL)},
    INERT_RECORD("gemini", gemini_schema),
    INERT_RECORD("bedrock", bedrock_schema),
    INERT_RECORD("huggingface", huggingface_schema),
    INERT_RECORD("cohere", cohere_schema),
    {0},
};
static const struct gw_schema options_schema = {
    .name = "options", .size = sizeof(struct ai_proxy_options), .fields = options_fields};

static const struct gw_field model_fields[] = {
    {GW_FIELD(struct ai_proxy_model, provider, GW_F_ENUM, GW_REQUIRED, NULL),
     .choices = gw_llm_provider_names},
    {GW_FIELD(struct ai_proxy_model, name, GW_F_STRING, 0, NULL), .min = 1, .max = 256},
    {GW_FIELD(struct ai_proxy_model, options, GW_F_RECORD, 0, "{}"), .record = &options_schema},
    {0},
};
static const struct gw_schema model_schema = {
    .name = "model", .size = sizeof(struct ai_proxy_model), .fields = model_fields};

static const struct gw_field auth_fields[] = {
    {GW_FIELD(struct ai_proxy_auth, header_name, GW_F_STRING, 0, NULL), .min = 1, .max = 256},
    {GW_FIELD(struct ai_proxy_auth, header_value, GW_F_STRING, GW_SECRET, NULL)},
    {GW_FIELD(struct ai_proxy_auth, param_name, GW_F_STRING, 0, NULL), .min = 1, .max = 256},
    {GW_FIELD(struct ai_proxy_auth, param_value, GW_F_STRING, GW_SECRET, NULL)},
    {GW_FIELD(struct ai_proxy_auth, param_location, GW_F_STRING, 0, NULL)},
    {GW_FIELD(struct ai_proxy_auth, allow_override, GW_F_BOOL, 0, "false")},
    INERT("gcp_use_service_account", "false",
          "GCP service accounts are for the gemini provider, which sluice does not have yet"),
    INERT("gcp_service_account_json", NULL,
          "GCP service accounts are for the gemini provider, which sluice does not have yet"),
    INERT("aws_access_key_id", NULL, "AWS credentials are " NO_PROVIDER("bedrock")),
    INERT("aws_secret_access_key", NULL, "AWS credentials are " NO_PROVIDER("bedrock")),
    INERT("azure_use_managed_identity", "false",
          "no Azure managed identity in sluice: give the key with header_name: api-key"),
    INERT("azure_client_id", NULL,
          "no Azure managed identity in sluice: give the key with header_name: api-key"),
    INERT("azure_client_secret", NULL,
          "no Azure managed identity in sluice: give the key with header_name: api-key"),
    INERT("azure_tenant_id", NULL,
          "no Azure managed identity in sluice: give the key with header_name: api-key"),
    {0},
};
static const struct gw_schema auth_schema = {
    .name = "auth", .size = sizeof(struct ai_proxy_auth), .fields = auth_fields};

static const struct gw_field logging_fields[] = {
    {GW_FIELD(struct ai_proxy_logging, log_statistics, GW_F_BOOL, 0, "false")},
    {GW_FIELD(struct ai_proxy_logging, log_payloads, GW_F_BOOL, 0, "false")},
    {0},
};
static const struct gw_schema logging_schema = {
    .name = "logging", .size = sizeof(struct ai_proxy_logging), .fields = logging_fields};

static const struct gw_field ai_proxy_fields[] = {
    {GW_FIELD(struct ai_proxy_conf, route_type, GW_F_ENUM, GW_REQUIRED, NULL),
     .choices = gw_llm_route_names},
    {GW_FIELD(struct ai_proxy_conf, auth, GW_F_RECORD, 0, "{}"), .record = &auth_schema},
    {GW_FIELD(struct ai_proxy_conf, model, GW_F_RECORD, GW_REQUIRED, NULL),
     .record = &model_schema},
    {GW_FIELD(struct ai_proxy_conf, logging, GW_F_RECORD, 0, "{}"), .record = &logging_schema},
    {GW_FIELD(struct ai_proxy_conf, response_streaming, GW_F_ENUM, 0, "allow"),
     .choices = streaming_modes},
    {GW_FIELD(struct ai_proxy_conf, max_request_body_size, GW_F_INT, 0, "8192"), .min = 1,
     .max = 1024.0 * 1024 * 1024},
    {GW_FIELD(struct ai_proxy_conf, model_name_header, GW_F_BOOL, 0, "true")},
    INERT("llm_format", "openai",
          "clients speak the OpenAI API here (Kong's native bedrock and gemini formats are not "
          "available)"),
    /* Kong Enterprise: what the route generates; route_type says it here. */
    {.name = "genai_category",
     .type = GW_F_INERT,
     .def = "text/generation",
     .choices = (const char *const[]){"text/embeddings", NULL},
     .why = "only text/generation and text/embeddings (as route_type says)"},
    {0},
};

static int map_format(struct gw_conf *cf, const struct gw_node *n, const char *field,
                      const char *value, int allow_raw, int *out)
{
    if (!value) return 0;
    if (strcmp(value, "openai") == 0) {
        *out = GW_LLM_FMT_OPENAI;
    } else if (strcmp(value, "ollama") == 0) {
        *out = GW_LLM_FMT_OLLAMA;
    } else if (allow_raw && strcmp(value, "raw") == 0) {
        *out = GW_LLM_FMT_RAW;
    } else {
        gw_conf_error(cf, n, field, "expected one of %s",
                      allow_raw ? "raw, openai, ollama" : "openai, ollama");
        return -1;
    }
    return 0;
}

/* Cross-field checks: each provider's required options (with the path of
 * the missing field), the auth parameter's location, templates. */
static int ai_proxy_validate(struct gw_conf *cf, const struct gw_node *n, void *obj)
{
    struct ai_proxy_conf *conf = obj;
    int rc = 0;
    const struct gw_node *model = gw_node_get(n, "model");
    const struct gw_node *opts = model ? gw_node_get(model, "options") : NULL;
    const struct gw_node *at = opts ? opts : model ? model : n;
    struct ai_proxy_options *o = &conf->model.options;
    if (map_format(cf, at, "model.options.llama2_format", o->llama2_format, 1,
                   &o->llm.llama2_format) < 0 ||
        map_format(cf, at, "model.options.mistral_format", o->mistral_format, 0,
                   &o->llm.mistral_format) < 0)
        rc = -1;
    conf->provider = gw_llm_providers[conf->model.provider];
    if (!model || !conf->provider) return -1; /* already reported */
    const char *field = NULL, *msg = NULL;
    if (conf->provider->validate &&
        conf->provider->validate((enum gw_llm_route)conf->route_type, &o->llm, &field, &msg) < 0) {
        if (strcmp(field, "route_type") == 0)
            gw_conf_error(cf, n, "route_type", "%s", msg);
        else
            gw_conf_error(cf, at, gw_sprintf(gw_conf_arena(cf), "model.options.%s", field), "%s",
                          msg);
        rc = -1;
    }
    struct ai_proxy_auth *a = &conf->auth;
    const struct gw_node *auth = gw_node_get(n, "auth");
    if ((a->header_name != NULL) != (a->header_value != NULL)) {
        gw_conf_error(cf, auth ? auth : n, "auth", "header_name and header_value go together");
        rc = -1;
    }
    /* Checked here rather than refused on each request: a key with a line
     * break (a secret file read with its newline) would otherwise leave the
     * client's own key in place of the configured one. The value is a
     * secret: the message does not repeat it. */
    if (a->header_name && a->header_name[strcspn(a->header_name, " \t\r\n:")]) {
        gw_conf_error(cf, gw_node_get(auth, "header_name"), "auth.header_name",
                      "must be a header name (no spaces, colons or line breaks)");
        rc = -1;
    }
    if (a->header_value && a->header_value[strcspn(a->header_value, "\r\n")]) {
        gw_conf_error(cf, gw_node_get(auth, "header_value"), "auth.header_value",
                      "must not contain a line break (CR or LF)");
        rc = -1;
    }
    if (a->param_name || a->param_value) {
        if (!a->param_name || !a->param_value || !a->param_location) {
            gw_conf_error(cf, auth ? auth : n, "auth",
                          "param_name, param_value and param_location go together");
            rc = -1;
        } else if (strcmp(a->param_location, "query") == 0) {
            a->location = AI_PARAM_QUERY;
        } else if (strcmp(a->param_location, "body") == 0) {
            a->location = AI_PARAM_BODY;
        } else {
            gw_conf_error(cf, auth ? auth : n, "auth.param_location",
                          "expected one of query, body");
            rc = -1;
        }
    }
    const struct gw_llm_options *l = &o->llm;
    conf->templated =
        ai_proxy_has_template(conf->model.name) || ai_proxy_has_template(l->upstream_url) ||
        ai_proxy_has_template(l->upstream_path) || ai_proxy_has_template(l->azure_instance) ||
        ai_proxy_has_template(l->azure_deployment_id) ||
        ai_proxy_has_template(l->azure_api_version) || ai_proxy_has_template(l->anthropic_version);
    return rc;
}

static const struct gw_schema ai_proxy_schema = {
    .name = "ai-proxy",
    .size = sizeof(struct ai_proxy_conf),
    .fields = ai_proxy_fields,
    .validate = ai_proxy_validate,
};

struct ai_proxy_ctx {
    int active;      /* access prepared an LLM call */
    int buffered;    /* whole reply translated at once */
    int passthrough; /* preserve: no translation */
    int json_stream; /* stream asked, one JSON reply came: re-cut as a stream */
    int ndjson;
    struct gw_llm_options opt; /* resolved for this request */
    struct gw_llm_call call;
    struct gw_sse_parser sse;
    struct evbuffer *out;     /* translated frames, moved into each chunk */
    struct evbuffer *payload; /* log_payloads on a stream: what the client got */
    size_t payload_seen;      /* the stream's length, kept or not */
    struct gw_request *r;
    int stats_done; /* record_stats ran */
};

static void evbuffer_free_cb(void *p)
{
    evbuffer_free(p);
}

/* log_payloads: a log line, not an archive. Bodies past this are cut, and
 * say so (a whole 5 MB embeddings reply would not fit the log queue, and
 * the line, with its tokens, would be lost). */
#define PAYLOAD_MAX (256u * 1024)
static const char *payload_copy(struct gw_arena *a, const char *body, size_t len)
{
    if (len <= PAYLOAD_MAX) return gw_strndup(a, body, len);
    char *s = gw_alloc(a, PAYLOAD_MAX + 64);
    memcpy(s, body, PAYLOAD_MAX);
    snprintf(s + PAYLOAD_MAX, 64, "...[cut: %zu bytes in all]", len);
    return s;
}

static int bad_request(struct gw_request *r, const char *msg)
{
    return gw_respond_openai_error(r, 400, "invalid_request_error", "%s", msg);
}

/* Templates resolved against this request; NULL and an answer on failure. */
static int resolve_options(struct gw_request *r, const struct ai_proxy_conf *conf,
                           struct ai_proxy_ctx *ctx, const char **model)
{
    ctx->opt = conf->model.options.llm;
    *model = conf->model.name;
    if (!conf->templated) return 0;
    const struct {
        const char **field;
        enum ai_tpl_kind kind;
    } fields[] = {
        {model, AI_TPL_TEXT},
        {&ctx->opt.upstream_url, AI_TPL_URL},
        {&ctx->opt.upstream_path, AI_TPL_URL},
        {&ctx->opt.azure_instance, AI_TPL_LABEL},
        {&ctx->opt.azure_deployment_id, AI_TPL_URL},
        {&ctx->opt.azure_api_version, AI_TPL_URL},
        {&ctx->opt.anthropic_version, AI_TPL_TEXT},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const char *err = NULL;
        const char *v = ai_proxy_expand(r, *fields[i].field, fields[i].kind, &err);
        if (!v && err) {
            gw_respond_openai_error(r, 400, "invalid_request_error", "%s", err);
            return -1;
        }
        *fields[i].field = v;
    }
    return 0;
}

/* A body that claims to be JSON (by its type or its first byte) is held
 * to it even on preserve: one that does not parse strictly (a repeated
 * "model", trailing bytes) could carry what the configured model or a
 * guard refused, read differently by the provider. */
static int json_like(struct gw_request *r, size_t len)
{
    if (!len) return 0; /* nothing to read differently */
    /* The media type alone (before any ';' parameter: a multipart boundary
     * may spell anything), ignoring case: .../json or .../...+json. */
    const char *ct = gw_headers_get(r->headers, "Content-Type");
    if (ct) {
        size_t mt = strcspn(ct, ";");
        while (mt && (ct[mt - 1] == ' ' || ct[mt - 1] == '\t'))
            mt--;
        if (mt >= 4 && strncasecmp(ct + mt - 4, "json", 4) == 0 &&
            (mt == 4 || ct[mt - 5] == '/' || ct[mt - 5] == '+'))
            return 1;
    }
    /* Whatever the type says, a body a JSON reader would take (after a
     * BOM and any amount of whitespace) is JSON to the provider. */
    size_t n;
    const unsigned char *b = (const unsigned char *)gw_request_body(r, &n);
    size_t i = n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF ? 3 : 0;
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
        i++;
    return i < n && (b[i] == '{' || b[i] == '[');
}

/* The client's query without the parameter named drop (the credential's
 * own, which auth.c decided about), or "" when nothing is left. */
static const char *query_without(struct gw_arena *a, const char *q, const char *drop)
{
    if (!q || !*q) return "";
    if (!drop) return q;
    size_t dl = strlen(drop), n = 0;
    char *out = gw_alloc(a, strlen(q) + 1);
    for (const char *p = q; *p;) {
        size_t len = strcspn(p, "&");
        size_t name = strcspn(p, "=&");
        if (!(name == dl && strncmp(p, drop, dl) == 0)) {
            if (n) out[n++] = '&';
            memcpy(out + n, p, len);
            n += len;
        }
        p += len + (p[len] == '&');
    }
    out[n] = '\0';
    return out;
}

/* url with its path replaced by path (NULL: kept); its own query (an auth
 * parameter, Azure's api-version) kept, then the client's (Kong sets the
 * path only: the client's query goes on). */
static const char *with_path(struct gw_arena *a, const char *url, const char *path,
                             const char *client_query)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t origin = strcspn(host, "/?#") + (size_t)(host - url);
    const char *query = strchr(url + origin, '?');
    size_t own_path = (query ? (size_t)(query - url) : strlen(url)) - origin;
    const char *sep = *client_query ? (query ? "&" : "?") : "";
    return gw_sprintf(a, "%.*s%.*s%s%s%s", (int)origin, url, (int)(path ? strlen(path) : own_path),
                      path ? path : url + origin, query ? query : "", sep, client_query);
}

/* preserve, as Kong: the provider's host (or upstream_url's) with the
 * client's own path unless upstream_path is set, the client's method, and
 * the client's body byte for byte (unless the credential goes in it). */
static void preserve_request(struct gw_request *r, const struct ai_proxy_conf *conf,
                             struct ai_proxy_ctx *ctx, const struct gw_llm_upstream *up)
{
    const char *q = query_without(
        r->arena, r->query, conf->auth.location == AI_PARAM_QUERY ? conf->auth.param_name : NULL);
    r->upstream_url = with_path(r->arena, up->url, ctx->opt.upstream_path ? NULL : r->path, q);
    r->upstream_method = r->method;
    if (conf->auth.location == AI_PARAM_BODY) {
        r->upstream_body = up->body;
        r->upstream_body_len = up->body_len;
        gw_headers_remove(r->headers, "Content-Length");
    }
}

static int ai_proxy_access(struct gw_request *r, const void *conf_, void *ctx_)
{
    const struct ai_proxy_conf *conf = conf_;
    struct ai_proxy_ctx *ctx = ctx_;
    enum gw_llm_route route = (enum gw_llm_route)conf->route_type;
    size_t len = evbuffer_get_length(r->body);
    if (len > (size_t)conf->max_request_body_size)
        return gw_respond_openai_error(r, 413, "invalid_request_error",
                                       "request body is larger than the %ld bytes allowed",
                                       conf->max_request_body_size);
    const char *err = NULL;
    cJSON *body = len ? gw_request_json(r, &err) : NULL;
    /* preserve passes any request through, as Kong's does (a GET of the
     * model list, a multipart upload): only a JSON body is looked into. */
    if (route == GW_LLM_PRESERVE && !cJSON_IsObject(body) && !json_like(r, len)) {
        body = cJSON_CreateObject();
        gw_arena_cleanup(r->arena, (gw_cleanup_fn)cJSON_Delete, body);
    }
    if (!cJSON_IsObject(body))
        return gw_respond_openai_error(r, 400, "invalid_request_error", "request body is %s%s%s",
                                       len ? "not a JSON object" : "empty, expected a JSON object",
                                       err ? ": " : "", err ? err : "");
    /* Kong's identify_request: a body that is both a chat and a completion
     * is refused, not guessed at (a guard that checked one could let the
     * other through to the provider). */
    if (route != GW_LLM_PRESERVE && cJSON_HasObjectItem(body, "messages") &&
        cJSON_HasObjectItem(body, "prompt"))
        return bad_request(r, "request matches multiple LLM request formats");
    if (route == GW_LLM_CHAT && !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(body, "messages")))
        return bad_request(r, "'messages' is a required property (an array) on llm/v1/chat routes");
    if (route == GW_LLM_COMPLETIONS && !cJSON_GetObjectItemCaseSensitive(body, "prompt"))
        return bad_request(r, "'prompt' is a required property on llm/v1/completions routes");
    if (route == GW_LLM_EMBEDDINGS && !cJSON_GetObjectItemCaseSensitive(body, "input"))
        return bad_request(r, "'input' is a required property on llm/v1/embeddings routes");

    const char *model;
    if (resolve_options(r, conf, ctx, &model) < 0) return GW_DONE;
    /* Azure clients (the AzureOpenAI SDKs) name their api-version in the
     * query; Kong's driver uses it before the configured one. */
    if (strcmp(conf->provider->name, "azure") == 0) {
        const char *v = ai_proxy_query_param(r, "api-version");
        if (v && *v) {
            const char *enc = ai_proxy_url_value(r, v);
            if (!enc) return bad_request(r, "api-version is not a valid version");
            ctx->opt.client_api_version = enc;
        }
    }
    const char *client_model = gw_json_str(body, "model");
    if (model && client_model && strcmp(model, client_model) != 0)
        return gw_respond_openai_error(r, 400, "invalid_request_error",
                                       "cannot use own model - must be: %s", model);
    if (!model) model = client_model;
    if (!model && route != GW_LLM_PRESERVE)
        return bad_request(r, "model parameter not found in request, nor in gateway configuration");

    cJSON *stream = cJSON_GetObjectItemCaseSensitive(body, "stream");
    if (cJSON_IsTrue(stream) && conf->response_streaming == AI_STREAM_DENY)
        return bad_request(r, "response streaming is not enabled for this LLM");
    if (conf->response_streaming == AI_STREAM_ALWAYS && route != GW_LLM_EMBEDDINGS &&
        !cJSON_IsTrue(stream)) {
        cJSON_DeleteItemFromObjectCaseSensitive(body, "stream");
        cJSON_AddTrueToObject(body, "stream");
    }

    const struct gw_llm_provider *p = conf->provider;
    gw_llm_call_init(&ctx->call, r->arena, p, route, &ctx->opt, model);
    struct gw_llm_upstream up;
    if (gw_llm_build(&ctx->call, body, &up, &err) < 0) return bad_request(r, err);
    ai_proxy_apply_auth(r, &conf->auth, p, &up);

    struct gw_headers *h = r->headers;
    if (route == GW_LLM_PRESERVE) {
        preserve_request(r, conf, ctx, &up);
    } else {
        r->upstream_url = up.url;
        r->upstream_method = up.method;
        r->upstream_body = up.body;
        r->upstream_body_len = up.body_len;
        gw_headers_remove(h, "Content-Length");
        gw_headers_set(h, "Content-Type", "application/json");
    }
    /* The client's codings are not the gateway's: a preserve reply passes
     * as it comes (its usage is read when it is plain), a translated one
     * is decoded by the core before it is parsed (as Kong inflates). */
    gw_headers_remove(h, "Accept-Encoding");
    if (route != GW_LLM_PRESERVE) r->upstream_decoded = 1;
    for (size_t i = 0; i < up.n_headers; i++) {
        if ((up.headers_if_absent >> i & 1u) && gw_headers_get(h, up.headers[i][0])) continue;
        /* A value from a template may hold what no header can carry. */
        if (gw_headers_set(h, up.headers[i][0], up.headers[i][1]) < 0)
            return bad_request(
                r, gw_sprintf(r->arena, "invalid value for the %s header", up.headers[i][0]));
    }

    ctx->active = 1;
    ctx->r = r;
    ctx->passthrough = route == GW_LLM_PRESERVE;
    ctx->ndjson = up.ndjson;
    struct gw_ai_stats *s = &r->ai;
    s->present = 1;
    s->provider = p->name;
    s->route_type = gw_llm_route_names[route];
    s->request_model = model;
    s->streaming = ctx->call.stream;
    s->cached_tokens = -1;
    s->ttft_ms = -1;
    s->log_statistics = conf->logging.log_statistics;
    s->log_payloads = conf->logging.log_payloads;
    if (conf->logging.log_payloads) {
        /* The request as it left the plugin chain: the client's bytes, or,
         * when a plugin rewrote it (a template rendered, a decorator's
         * messages added), the rewritten request; ai-prompt-template's
         * log_original_request keeps the client's. */
        const char *raw = NULL;
        if (gw_request_json_is_changed(r))
            raw = gw_json_print(r->arena, body, &len);
        else
            raw = gw_request_body(r, &len);
        s->request_payload = raw ? payload_copy(r->arena, raw, len) : NULL;
    }
    return GW_OK;
}

/* "provider/model" for the model-name header, without printf. */
static const char *model_header(struct gw_arena *a, const char *provider, const char *model)
{
    size_t pl = strlen(provider), ml = model ? strlen(model) : 0;
    char *v = gw_alloc(a, pl + ml + 2);
    memcpy(v, provider, pl);
    v[pl] = '/';
    if (ml) memcpy(v + pl + 1, model, ml);
    v[pl + 1 + ml] = '\0';
    return v;
}

static int ai_proxy_response_headers(struct gw_request *r, const void *conf_, void *ctx_)
{
    const struct ai_proxy_conf *conf = conf_;
    struct ai_proxy_ctx *ctx = ctx_;
    struct gw_headers *h = r->response_headers;
    /* The OpenAI SDKs read a reply's id from x-request-id (request_id,
     * _request_id, APIError.requestID), on every answer of this route: the
     * provider's (Anthropic calls it request-id), else sluice's own, as in
     * the log line (the gateway's errors, a refusal by another plugin). */
    const char *rid = gw_headers_get(h, "X-Request-Id");
    if (!rid) {
        rid = gw_headers_get(h, "Request-Id");
        if (!rid) rid = r->id;
        gw_headers_add(h, "X-Request-Id", rid);
    }
    const char *native = conf->provider->request_id_header;
    if (native && !gw_headers_get(h, native)) gw_headers_add(h, native, rid);
    if (!ctx->active || r->early_response) return GW_OK;
    if (conf->model_name_header) {
        /* Checked, not add_ref: the model is the client's (its JSON, a
         * percent-decoded query template) and may hold CR/LF; such a name
         * is left out rather than split the head. */
        const char *v = model_header(r->arena, ctx->call.provider->name, ctx->call.model);
        gw_headers_add(r->response_headers, "X-Sluice-LLM-Model", v);
    }
    if (ctx->passthrough) {
        /* preserve: the reply goes out untouched, but is read for usage. A
         * streamed reply is recognised by its type, not by the request's
         * `stream` (Ollama's native API streams unless told not to). */
        if (r->status < 200 || r->status > 299) {
            /* Read whole, as on translated routes: its body is logged. */
            r->buffer_response = 1;
            ctx->buffered = 1;
            return GW_OK;
        }
        const char *ct = gw_headers_get(h, "Content-Type");
        int sse = ct && strstr(ct, "text/event-stream") != NULL;
        int ndjson = ct && strstr(ct, "ndjson") != NULL;
        if (sse || ndjson) {
            gw_sse_init(&ctx->sse, r->arena, ndjson);
            ctx->out = evbuffer_new();
            gw_arena_cleanup(r->arena, evbuffer_free_cb, ctx->out);
        } else {
            r->buffer_response = 1;
            ctx->buffered = 1;
        }
        return GW_OK;
    }
    gw_headers_remove(h, "Content-Length");
    gw_headers_remove(h, "Content-Encoding");
    const char *uct = gw_headers_get(h, "Content-Type");
    if (ctx->call.stream && r->status >= 200 && r->status <= 299 && uct &&
        strstr(uct, "application/json")) {
        /* A server that ignored `stream`: its one reply becomes a stream. */
        r->buffer_response = 1;
        ctx->buffered = 1;
        ctx->json_stream = 1;
        gw_headers_set(h, "Content-Type", "text/event-stream");
        return GW_OK;
    }
    if (!ctx->call.stream || r->status < 200 || r->status > 299) {
        /* Errors are single JSON bodies even when a stream was asked for. */
        r->buffer_response = 1;
        ctx->buffered = 1;
        gw_headers_set(h, "Content-Type", "application/json");
        return GW_OK;
    }
    gw_headers_set(h, "Content-Type", "text/event-stream");
    gw_headers_set(h, "Cache-Control", "no-cache");
    gw_sse_init(&ctx->sse, r->arena, ctx->ndjson);
    ctx->out = evbuffer_new();
    gw_arena_cleanup(r->arena, evbuffer_free_cb, ctx->out);
    return GW_OK;
}

static void record_stats(struct gw_request *r, struct ai_proxy_ctx *ctx)
{
    ctx->stats_done = 1;
    struct gw_ai_stats *s = &r->ai;
    const struct gw_llm_call *c = &ctx->call;
    s->response_model = c->response_model ? c->response_model : c->model;
    s->prompt_tokens = c->usage.prompt;
    s->completion_tokens = c->usage.completion;
    s->total_tokens = c->usage.total;
    s->cached_tokens = c->usage.cached;
    s->cost = gw_llm_cost(c);
    if (r->t_upstream_start) s->llm_latency_ms = (double)(gw_now_us() - r->t_upstream_start) / 1e3;
}

/* Time to first token: when the first frame worth a chunk to the client
 * came through (bytes alone are not a token: an SSE comment, a ping). */
static void note_first_token(struct gw_request *r, struct ai_proxy_ctx *ctx)
{
    if (r->ai.ttft_ms < 0 && r->t_upstream_start && evbuffer_get_length(ctx->out) > 0)
        r->ai.ttft_ms = (double)(gw_now_us() - r->t_upstream_start) / 1e3;
}

static int frame_cb(void *arg, const char *event, const char *data, size_t len)
{
    struct ai_proxy_ctx *ctx = arg;
    return ctx->call.provider->stream_frame(&ctx->call, event, data, len, ctx->out);
}

/* log_payloads on a stream: the bytes the client got (src: the translated
 * frames, or on preserve the provider's own), up to PAYLOAD_MAX, with a
 * note of the full size when cut, as payload_copy does for whole bodies. */
static void keep_stream_payload(struct gw_request *r, struct ai_proxy_ctx *ctx,
                                struct evbuffer *src, int last)
{
    if (!r->ai.log_payloads) return;
    if (!ctx->payload) {
        ctx->payload = evbuffer_new();
        gw_arena_cleanup(r->arena, evbuffer_free_cb, ctx->payload);
    }
    size_t have = evbuffer_get_length(ctx->payload);
    size_t n = evbuffer_get_length(src);
    ctx->payload_seen += n;
    if (have < PAYLOAD_MAX && n) {
        size_t take = n < PAYLOAD_MAX - have ? n : PAYLOAD_MAX - have;
        /* However many chains the frames of this read span (a burst of small
         * frames spans many): every byte, in order. */
        struct evbuffer_ptr pos;
        evbuffer_ptr_set(src, &pos, 0, EVBUFFER_PTR_SET);
        struct evbuffer_iovec v[16];
        while (take) {
            int nv = evbuffer_peek(src, (ev_ssize_t)take, &pos, v, 16);
            if (nv <= 0) break;
            size_t got = 0;
            for (int i = 0; i < nv && i < 16 && take; i++) {
                size_t k = v[i].iov_len < take ? v[i].iov_len : take;
                evbuffer_add(ctx->payload, v[i].iov_base, k);
                take -= k;
                got += k;
            }
            if (!got || evbuffer_ptr_set(src, &pos, got, EVBUFFER_PTR_ADD) < 0) break;
        }
    }
    if (last) {
        size_t len = evbuffer_get_length(ctx->payload);
        if (ctx->payload_seen > len)
            evbuffer_add_printf(ctx->payload, "...[cut: %zu bytes in all]", ctx->payload_seen);
        len = evbuffer_get_length(ctx->payload);
        char *s = gw_alloc(r->arena, len + 1);
        evbuffer_remove(ctx->payload, s, len);
        s[len] = '\0';
        r->ai.response_payload = s;
    }
}

/* preserve routes: the provider's translators run on a copy of the reply
 * for their side effects (usage, answering model); their output is dropped
 * and the client gets the provider's bytes. */
static int preserve_body(struct gw_request *r, struct ai_proxy_ctx *ctx, struct evbuffer *chunk,
                         int last)
{
    size_t len = evbuffer_get_length(chunk);
    if (ctx->buffered) {
        if (!last) return GW_OK;
        const char *body = (const char *)evbuffer_pullup(chunk, (ev_ssize_t)len);
        const char *err = NULL;
        cJSON_Delete(ctx->call.provider->parse_response(&ctx->call, r->status, body, len, &err));
        record_stats(r, ctx);
        if (r->ai.log_payloads && body) r->ai.response_payload = payload_copy(r->arena, body, len);
        return GW_OK;
    }
    if (!ctx->out) return GW_OK;
    if (len) {
        const char *p = (const char *)evbuffer_pullup(chunk, (ev_ssize_t)len);
        if (!ctx->call.done_sent && !ctx->call.errored &&
            gw_sse_feed(&ctx->sse, p, len, frame_cb, ctx) < 0 && ctx->sse.too_large)
            ctx->call.errored = 1; /* the client has the bytes; only the usage count stops */
        note_first_token(r, ctx);
        evbuffer_drain(ctx->out, evbuffer_get_length(ctx->out));
    }
    if (last) {
        if (!r->error && !ctx->call.done_sent && !ctx->call.errored) {
            ctx->call.at_eof = 1;
            gw_sse_finish(&ctx->sse, frame_cb, ctx);
        }
        evbuffer_drain(ctx->out, evbuffer_get_length(ctx->out));
        record_stats(r, ctx);
    }
    keep_stream_payload(r, ctx, chunk, last);
    return GW_OK;
}

static int ai_proxy_response_body(struct gw_request *r, const void *conf_, void *ctx_,
                                  struct evbuffer *chunk, int last)
{
    const struct ai_proxy_conf *conf = conf_;
    struct ai_proxy_ctx *ctx = ctx_;
    if (!ctx->active || r->early_response) return GW_OK;
    if (ctx->passthrough) return preserve_body(r, ctx, chunk, last);
    if (ctx->buffered) {
        if (!last) return GW_OK;
        size_t len = evbuffer_get_length(chunk);
        const char *body = (const char *)evbuffer_pullup(chunk, (ev_ssize_t)len);
        const char *err = NULL;
        cJSON *out = ctx->call.provider->parse_response(&ctx->call, r->status, body, len, &err);
        if (out && r->status >= 200 && r->status <= 299)
            gw_llm_embeddings_to_base64(&ctx->call, out);
        if (out && conf->model_name_header && ctx->call.response_model && r->status >= 200 &&
            r->status <= 299) {
            /* The whole reply is known before the headers leave: name the
             * model that answered (an Azure deployment, a dated snapshot). */
            gw_headers_set(
                r->response_headers, "X-Sluice-LLM-Model",
                model_header(r->arena, ctx->call.provider->name, ctx->call.response_model));
        }
        if (out && ctx->json_stream) {
            struct evbuffer *sse = evbuffer_new();
            gw_llm_reply_to_chunks(&ctx->call, out, sse);
            cJSON_Delete(out);
            evbuffer_drain(chunk, len);
            size_t n = evbuffer_get_length(sse);
            char *s = gw_alloc(r->arena, n + 1);
            evbuffer_copyout(sse, s, n);
            s[n] = '\0';
            evbuffer_add_buffer(chunk, sse);
            evbuffer_free(sse);
            record_stats(r, ctx);
            if (r->ai.log_payloads) r->ai.response_payload = payload_copy(r->arena, s, n);
            return GW_OK;
        }
        if (!out && ctx->json_stream) {
            gw_headers_set(r->response_headers, "Content-Type", "application/json");
        }
        if (!out) {
            r->status = 502;
            r->error = err;
            out = gw_llm_error_object(502, "api_error",
                                      gw_sprintf(r->arena, "could not translate the %s reply: %s",
                                                 ctx->call.provider->name, err),
                                      NULL);
        }
        size_t n;
        char *s = gw_json_print(r->arena, out, &n);
        cJSON_Delete(out);
        evbuffer_drain(chunk, len);
        evbuffer_add(chunk, s, n); /* copied: the reply may outlive the arena */
        record_stats(r, ctx);
        if (r->ai.log_payloads) r->ai.response_payload = payload_copy(r->arena, s, n);
        return GW_OK;
    }
    if (!ctx->out) return GW_OK;
    size_t len = evbuffer_get_length(chunk);
    if (len) {
        const char *p = (const char *)evbuffer_pullup(chunk, (ev_ssize_t)len);
        if (!ctx->call.done_sent && gw_sse_feed(&ctx->sse, p, len, frame_cb, ctx) < 0 &&
            ctx->sse.too_large && !ctx->call.done_sent) {
            /* Past it, whatever follows would be read mid-frame: the stream
             * ends here, saying why, never cut short as if complete. */
            static const char too_large[] =
                "upstream sent a stream frame larger than the 8 MiB limit";
            gw_llm_emit_error(&ctx->call, ctx->out, too_large);
            if (!r->error) r->error = too_large;
        }
        note_first_token(r, ctx);
        evbuffer_drain(chunk, len);
    }
    if (last) {
        /* The core sets r->error when the upstream broke or stalled: the
         * partial frame left in the parser is a cut, not a bad frame. */
        if (r->error && !ctx->call.done_sent)
            gw_llm_emit_error(&ctx->call, ctx->out, r->error);
        else if (!ctx->call.done_sent) {
            ctx->call.at_eof = 1;
            gw_sse_finish(&ctx->sse, frame_cb, ctx);
        }
        /* A stream that ends on an error event is an error in the log
         * too, though its status went out as 200. */
        int ended = ctx->call.done_sent;
        if (gw_llm_stream_end(&ctx->call, ctx->out) < 0 && !r->error)
            r->error = ended ? "the stream ended with an error event"
                             : "upstream stream ended before it was complete";
        record_stats(r, ctx);
    }
    keep_stream_payload(r, ctx, ctx->out, last);
    evbuffer_add_buffer(chunk, ctx->out);
    return GW_OK;
}

static void ai_proxy_log(struct gw_request *r, const void *conf_, void *ctx_)
{
    struct ai_proxy_ctx *ctx = ctx_;
    const struct gw_ai_stats *s = &r->ai;
    if (!ctx->active) return;
    /* A request that ended without its last body chunk (the client left,
     * a timeout, an error answered by the core) still has what the
     * provider reported so far, and the time the call took. */
    if (!ctx->stats_done) record_stats(r, ctx);
    if (s->log_statistics) {
        const struct gw_llm_options *o = &ctx->opt;
        gw_request_log_field(r, "ai.provider", "%s", s->provider);
        gw_request_log_field(r, "ai.request_model", "%s", s->request_model ? s->request_model : "");
        gw_request_log_field(r, "ai.model", "%s",
                             s->response_model  ? s->response_model
                             : s->request_model ? s->request_model
                                                : "");
        gw_request_log_field(r, "ai.prompt_tokens", "%ld", s->prompt_tokens);
        gw_request_log_field(r, "ai.completion_tokens", "%ld", s->completion_tokens);
        gw_request_log_field(r, "ai.total_tokens", "%ld", s->total_tokens);
        /* Exact, not rounded: a cheap model's request costs micro-dollars.
         * Left out when no price is configured ("not priced" is not "free"). */
        if (o->input_cost.set || o->output_cost.set)
            gw_request_log_field(r, "ai.cost", "%.12g", s->cost);
        if (r->t_upstream_start)
            gw_request_log_field(r, "ai.llm_latency_ms", "%.1f", s->llm_latency_ms);
        if (s->ttft_ms >= 0) gw_request_log_field(r, "ai.ttft_ms", "%.1f", s->ttft_ms);
    }
    if (s->log_payloads) {
        if (s->request_payload)
            gw_request_log_field(r, "ai.payload.request", "%s", s->request_payload);
        if (s->response_payload)
            gw_request_log_field(r, "ai.payload.response", "%s", s->response_payload);
    }
}

const struct gw_plugin gw_plugin_ai_proxy = {
    .name = "ai-proxy",
    .priority = 770,
    .needs_body = 1,
    .openai_errors = 1,
    .schema = &ai_proxy_schema,
    .ctx_size = sizeof(struct ai_proxy_ctx),
    .access = ai_proxy_access,
    .response_headers = ai_proxy_response_headers,
    .response_body = ai_proxy_response_body,
    .log = ai_proxy_log,
};
