/*
 * ai-proxy's credentials. A configured key must replace whatever the client
 * sent (a client must not pick the gateway's provider account, nor leak its
 * own key to it), unless allow_override lets the client's own key win. With
 * no auth configured the client's key passes through, moved from the
 * OpenAI SDK's `Authorization: Bearer` into the header the provider reads.
 */
#include <stdlib.h>
#include <string.h>

#include "ai_proxy.h"

/* Headers that carry a provider key in some provider's form. */
static const char *const key_headers[] = {"Authorization", "x-api-key", "api-key", NULL};

static void auth_query(struct gw_request *r, const struct ai_proxy_auth *a,
                       struct gw_llm_upstream *up)
{
    const char *v = a->param_value;
    if (a->allow_override) {
        const char *own = ai_proxy_query_param(r, a->param_name);
        if (own && *own) v = own;
    }
    char *enc = evhttp_encode_uri(v);
    up->url = gw_sprintf(r->arena, "%s%c%s=%s", up->url, strchr(up->url, '?') ? '&' : '?',
                         a->param_name, enc);
    free(enc);
}

static void auth_body(struct gw_request *r, const struct ai_proxy_auth *a,
                      struct gw_llm_upstream *up)
{
    cJSON *b = cJSON_ParseWithLength(up->body, up->body_len);
    if (cJSON_IsObject(b)) {
        if (!(a->allow_override &&
              cJSON_IsString(cJSON_GetObjectItemCaseSensitive(b, a->param_name)))) {
            cJSON_DeleteItemFromObjectCaseSensitive(b, a->param_name);
            cJSON_AddStringToObject(b, a->param_name, a->param_value);
        }
        up->body = gw_json_print(r->arena, b, &up->body_len);
    }
    cJSON_Delete(b);
}

/* An OAuth or OpenID access token is a JWT: three base64url parts, the
 * first a JSON object ("eyJ" is how '{"' starts in base64). Azure's Entra ID
 * tokens and Anthropic's OAuth tokens are such; API keys never are. */
static int is_jwt(const char *t)
{
    if (strncmp(t, "eyJ", 3) != 0) return 0;
    const char *dot = strchr(t, '.');
    return dot && strchr(dot + 1, '.') != NULL;
}

/* The OpenAI SDK's `Authorization: Bearer K` (and the Anthropic SDK's, since
 * 1.x) moved into the header the provider reads; 1 when the client sent one.
 * An access token is no API key: it stays where the client put it. */
static int bearer_to_provider_form(struct gw_headers *h, const struct gw_llm_provider *p)
{
    const char *authz = gw_headers_get(h, "Authorization");
    if (p->auth_bearer || !authz || strncasecmp(authz, "Bearer ", 7) != 0) return 0;
    if (is_jwt(authz + 7)) return 1;
    if (!gw_headers_get(h, p->auth_header)) gw_headers_add(h, p->auth_header, authz + 7);
    gw_headers_remove(h, "Authorization");
    return 1;
}

void ai_proxy_apply_auth(struct gw_request *r, const struct ai_proxy_auth *a,
                         const struct gw_llm_provider *p, struct gw_llm_upstream *up)
{
    struct gw_headers *h = r->headers;
    if (a->header_name || a->param_name) {
        /* allow_override: the client's key in the configured header, or as
         * a Bearer token when the configured header is the provider's own
         * (x-api-key for Anthropic: its SDK sends Bearer). */
        int keep =
            a->allow_override && a->header_name &&
            (gw_headers_get(h, a->header_name) ||
             (strcasecmp(a->header_name, p->auth_header) == 0 && bearer_to_provider_form(h, p)));
        if (!keep) {
            for (size_t i = 0; key_headers[i]; i++)
                gw_headers_remove(h, key_headers[i]);
            if (a->header_name) {
                gw_headers_set(h, a->header_name, a->header_value);
            }
        }
        if (a->location == AI_PARAM_QUERY)
            auth_query(r, a, up);
        else if (a->location == AI_PARAM_BODY)
            auth_body(r, a, up);
        return;
    }
    bearer_to_provider_form(h, p);
}
