/*
 * ai-proxy's request-side helpers without a daemon: $(headers.X) and
 * $(query_params.X) templates (plugins/ai-proxy/template.c) and the
 * credential paths (plugins/ai-proxy/auth.c) on a hand-built request.
 */
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>

#include "../../plugins/ai-proxy/ai_proxy.h"
#include "gw_arena.h"
#include "gw_test.h"

struct fake_req {
    struct gw_request r;
    struct gw_headers h;
};

static void req_init(struct fake_req *f, const char *query)
{
    memset(f, 0, sizeof(*f));
    f->r.arena = gw_arena_new(0);
    gw_headers_init(&f->h, f->r.arena);
    f->r.headers = &f->h;
    f->r.query = query;
}

static void req_free(struct fake_req *f)
{
    gw_headers_clear(&f->h);
    gw_arena_free(f->r.arena);
}

static void test_templates(void)
{
    struct fake_req f;
    req_init(&f, "dep=my%20dep&v=2024-02-01&empty=&up=..%2F..%2Fadmin%3Fx%3D1%23&dots=..&host=evil."
                 "example%3A1%2F%23");
    gw_headers_add(&f.h, "X-Model", "gpt-4o-mini");
    const char *err = NULL;
    const enum ai_tpl_kind T = AI_TPL_TEXT, U = AI_TPL_URL, L = AI_TPL_LABEL;

    CHECK(!ai_proxy_has_template("gpt-4o"));
    CHECK(!ai_proxy_has_template(NULL));
    CHECK(ai_proxy_has_template("$(headers.x)"));
    const char *plain = "gpt-4o";
    CHECK(ai_proxy_expand(&f.r, plain, T, &err) == plain);
    CHECK(ai_proxy_expand(&f.r, NULL, T, &err) == NULL);
    CHECK(err == NULL);

    /* Header names are case-insensitive, as in HTTP. */
    CHECK_STR(ai_proxy_expand(&f.r, "$(headers.x-model)", T, &err), "gpt-4o-mini");
    CHECK_STR(ai_proxy_expand(&f.r, "pre-$(headers.X-MODEL)-post", T, &err),
              "pre-gpt-4o-mini-post");
    /* Query parameters are decoded; several templates in one string. */
    CHECK_STR(ai_proxy_expand(&f.r, "/d/$(query_params.dep)?v=$(query_params.v)", T, &err),
              "/d/my dep?v=2024-02-01");
    CHECK_STR(ai_proxy_expand(&f.r, "[$(query_params.empty)]", T, &err), "[]");

    /* In the upstream URL a value is one segment: re-encoded, so that it
     * cannot add segments, a query or a fragment; dot segments refused. */
    CHECK_STR(ai_proxy_expand(&f.r, "http://u/d/$(query_params.dep)/chat", U, &err),
              "http://u/d/my%20dep/chat");
    CHECK_STR(ai_proxy_expand(&f.r, "http://u/d/$(query_params.up)/chat", U, &err),
              "http://u/d/..%2F..%2Fadmin%3Fx%3D1%23/chat");
    err = NULL;
    CHECK(ai_proxy_expand(&f.r, "http://u/d/$(query_params.dots)/chat", U, &err) == NULL);
    CHECK_STR(err, "query_params.dots cannot be empty, '.' or '..' in the upstream URL");
    err = NULL;
    CHECK(ai_proxy_expand(&f.r, "http://u/d/$(query_params.empty)", U, &err) == NULL);
    CHECK(err != NULL);
    /* An Azure instance is one host name label. */
    CHECK_STR(ai_proxy_expand(&f.r, "$(headers.x-model)", L, &err), "gpt-4o-mini");
    err = NULL;
    CHECK(ai_proxy_expand(&f.r, "$(query_params.host)", L, &err) == NULL);
    CHECK_STR(err, "query_params.host must be a host name label (letters, digits, '-')");

    /* Absent header or parameter: NULL and its name. */
    err = NULL;
    CHECK(ai_proxy_expand(&f.r, "$(headers.x-absent)", T, &err) == NULL);
    CHECK_STR(err, "headers.x-absent is required by this route's configuration");
    err = NULL;
    CHECK(ai_proxy_expand(&f.r, "a$(query_params.nope)", T, &err) == NULL);
    CHECK_STR(err, "query_params.nope is required by this route's configuration");
    /* An unknown source is never silently empty; no route, no captures. */
    err = NULL;
    CHECK(ai_proxy_expand(&f.r, "$(env.HOME)", T, &err) == NULL);
    CHECK_STR(err, "env.HOME is required by this route's configuration");
    err = NULL;
    CHECK(ai_proxy_expand(&f.r, "$(uri_captures.dep)", T, &err) == NULL);
    CHECK_STR(err, "uri_captures.dep is required by this route's configuration");
    /* An unclosed template is literal text. */
    err = NULL;
    CHECK_STR(ai_proxy_expand(&f.r, "x$(headers.x-model", T, &err), "x$(headers.x-model");
    req_free(&f);

    /* No query string at all. */
    req_init(&f, NULL);
    err = NULL;
    CHECK(ai_proxy_expand(&f.r, "$(query_params.dep)", T, &err) == NULL);
    CHECK_STR(err, "query_params.dep is required by this route's configuration");
    req_free(&f);
}

static struct gw_llm_upstream upstream(struct gw_arena *a, const char *url, const char *body)
{
    struct gw_llm_upstream up;
    memset(&up, 0, sizeof(up));
    up.url = url;
    up.body = gw_strdup(a, body);
    up.body_len = strlen(body);
    return up;
}

static const char *body_str(const struct gw_llm_upstream *up, const char *key, char *buf, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(up->body, up->body_len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
    if (s) snprintf(buf, n, "%s", s);
    cJSON_Delete(j);
    return s ? buf : NULL;
}

static void test_auth(void)
{
    const struct gw_llm_provider *openai = gw_llm_provider_find("openai");
    const struct gw_llm_provider *anthropic = gw_llm_provider_find("anthropic");
    const struct gw_llm_provider *azure = gw_llm_provider_find("azure");
    struct fake_req f;
    struct gw_llm_upstream up;
    char buf[128];

    /* Header auth: every client key header goes, the configured one comes. */
    struct ai_proxy_auth hdr = {.header_name = "x-api-key", .header_value = "conf-key"};
    req_init(&f, NULL);
    gw_headers_add(&f.h, "Authorization", "Bearer client");
    gw_headers_add(&f.h, "api-key", "client2");
    gw_headers_add(&f.h, "X-Api-Key", "client3");
    up = upstream(f.r.arena, "http://u/v1/messages", "{}");
    ai_proxy_apply_auth(&f.r, &hdr, anthropic, &up);
    CHECK_STR(gw_headers_get(&f.h, "x-api-key"), "conf-key");
    CHECK(gw_headers_get(&f.h, "Authorization") == NULL);
    CHECK(gw_headers_get(&f.h, "api-key") == NULL);
    req_free(&f);

    /* allow_override: the client's own header wins... */
    hdr.allow_override = 1;
    req_init(&f, NULL);
    gw_headers_add(&f.h, "X-API-KEY", "client-own");
    up = upstream(f.r.arena, "http://u/v1/messages", "{}");
    ai_proxy_apply_auth(&f.r, &hdr, anthropic, &up);
    CHECK_STR(gw_headers_get(&f.h, "x-api-key"), "client-own");
    req_free(&f);
    /* ...so does its Bearer key when the configured header is the
     * provider's own (the Anthropic SDK 1.x sends its key as Bearer)... */
    req_init(&f, NULL);
    gw_headers_add(&f.h, "Authorization", "Bearer other-form");
    up = upstream(f.r.arena, "http://u/v1/messages", "{}");
    ai_proxy_apply_auth(&f.r, &hdr, anthropic, &up);
    CHECK_STR(gw_headers_get(&f.h, "x-api-key"), "other-form");
    CHECK(gw_headers_get(&f.h, "Authorization") == NULL);
    req_free(&f);
    /* ...but not for another header; without one the configured key is used. */
    struct ai_proxy_auth custom = {
        .header_name = "X-Gateway-Key", .header_value = "conf-key", .allow_override = 1};
    req_init(&f, NULL);
    gw_headers_add(&f.h, "Authorization", "Bearer other-form");
    up = upstream(f.r.arena, "http://u/v1/messages", "{}");
    ai_proxy_apply_auth(&f.r, &custom, anthropic, &up);
    CHECK_STR(gw_headers_get(&f.h, "X-Gateway-Key"), "conf-key");
    CHECK(gw_headers_get(&f.h, "Authorization") == NULL);
    CHECK(gw_headers_get(&f.h, "x-api-key") == NULL);
    req_free(&f);
    req_init(&f, NULL);
    up = upstream(f.r.arena, "http://u/v1/messages", "{}");
    ai_proxy_apply_auth(&f.r, &hdr, anthropic, &up);
    CHECK_STR(gw_headers_get(&f.h, "x-api-key"), "conf-key");
    req_free(&f);

    /* Query parameter: appended (encoded) after an existing query. */
    struct ai_proxy_auth q = {.param_name = "key",
                              .param_value = "a&b c",
                              .param_location = "query",
                              .location = AI_PARAM_QUERY};
    req_init(&f, "key=client");
    gw_headers_add(&f.h, "Authorization", "Bearer client");
    up = upstream(f.r.arena, "http://u/x?api-version=1", "{}");
    ai_proxy_apply_auth(&f.r, &q, openai, &up);
    CHECK_STR(up.url, "http://u/x?api-version=1&key=a%26b%20c");
    CHECK(gw_headers_get(&f.h, "Authorization") == NULL);
    up = upstream(f.r.arena, "http://u/x", "{}");
    q.allow_override = 1;
    ai_proxy_apply_auth(&f.r, &q, openai, &up);
    CHECK_STR(up.url, "http://u/x?key=client");
    req_free(&f);

    /* Body parameter: set, replacing the client's unless allow_override. */
    struct ai_proxy_auth b = {.param_name = "api_key",
                              .param_value = "conf-body",
                              .param_location = "body",
                              .location = AI_PARAM_BODY};
    req_init(&f, NULL);
    up = upstream(f.r.arena, "http://u/x", "{\"model\":\"m\",\"api_key\":\"client\"}");
    ai_proxy_apply_auth(&f.r, &b, openai, &up);
    CHECK_STR(body_str(&up, "api_key", buf, sizeof(buf)), "conf-body");
    CHECK_STR(body_str(&up, "model", buf, sizeof(buf)), "m");
    b.allow_override = 1;
    up = upstream(f.r.arena, "http://u/x", "{\"model\":\"m\",\"api_key\":\"client\"}");
    ai_proxy_apply_auth(&f.r, &b, openai, &up);
    CHECK_STR(body_str(&up, "api_key", buf, sizeof(buf)), "client");
    up = upstream(f.r.arena, "http://u/x", "{\"model\":\"m\"}");
    ai_proxy_apply_auth(&f.r, &b, openai, &up);
    CHECK_STR(body_str(&up, "api_key", buf, sizeof(buf)), "conf-body");
    req_free(&f);

    /* No auth: the client's bearer key in the provider's header. */
    struct ai_proxy_auth none = {0};
    req_init(&f, NULL);
    gw_headers_add(&f.h, "Authorization", "Bearer sk-client");
    up = upstream(f.r.arena, "http://u/x", "{}");
    ai_proxy_apply_auth(&f.r, &none, azure, &up);
    CHECK_STR(gw_headers_get(&f.h, "api-key"), "sk-client");
    CHECK(gw_headers_get(&f.h, "Authorization") == NULL);
    req_free(&f);
    req_init(&f, NULL);
    gw_headers_add(&f.h, "Authorization", "Bearer sk-client");
    ai_proxy_apply_auth(&f.r, &none, openai, &up);
    CHECK_STR(gw_headers_get(&f.h, "Authorization"), "Bearer sk-client");
    req_free(&f);
    /* A client already using the provider's header keeps it. */
    req_init(&f, NULL);
    gw_headers_add(&f.h, "Authorization", "Bearer from-sdk");
    gw_headers_add(&f.h, "x-api-key", "native");
    ai_proxy_apply_auth(&f.r, &none, anthropic, &up);
    CHECK_STR(gw_headers_get(&f.h, "x-api-key"), "native");
    CHECK(gw_headers_get(&f.h, "Authorization") == NULL);
    req_free(&f);
}

int main(void)
{
    test_templates();
    test_auth();
    return gw_test_done("test_llm_ai_proxy");
}
