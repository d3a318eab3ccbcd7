/*
 * ai-proxy's config (Kong's schema, names and defaults) and the template
 * helper, shared by the plugin's files.
 */
#ifndef AI_PROXY_H
#define AI_PROXY_H

#include "sluice.h"
#include "llm/llm.h"

enum ai_proxy_streaming { AI_STREAM_ALLOW, AI_STREAM_DENY, AI_STREAM_ALWAYS };
enum ai_proxy_param_location { AI_PARAM_NONE, AI_PARAM_QUERY, AI_PARAM_BODY };

struct ai_proxy_auth {
    const char *header_name, *header_value; /* header_value is a secret */
    const char *param_name, *param_value;   /* param_value is a secret */
    const char *param_location;             /* query | body */
    int allow_override;
    int location; /* enum ai_proxy_param_location, derived */
};

struct ai_proxy_options {
    struct gw_llm_options llm;
    const char *llama2_format, *mistral_format; /* as written; mapped into llm */
};

struct ai_proxy_model {
    int provider; /* index into gw_llm_providers / gw_llm_provider_names */
    const char *name;
    struct ai_proxy_options options;
};

struct ai_proxy_logging {
    int log_statistics, log_payloads;
};

struct ai_proxy_conf {
    int route_type; /* enum gw_llm_route */
    struct ai_proxy_auth auth;
    struct ai_proxy_model model;
    struct ai_proxy_logging logging;
    int response_streaming; /* enum ai_proxy_streaming */
    long max_request_body_size;
    int model_name_header;
    /* Derived at load. */
    const struct gw_llm_provider *provider;
    int templated; /* model.name or an option holds $(headers.X) / $(query_params.X) */
};

/* Where a template's value lands, which decides what it may hold. */
enum ai_tpl_kind {
    AI_TPL_TEXT,  /* model name, a header value: as it is */
    AI_TPL_URL,   /* a piece of the upstream URL: one segment, percent-encoded */
    AI_TPL_LABEL, /* azure_instance: one DNS label of the provider's host */
};

/* Expands $(headers.NAME), $(query_params.NAME) and $(uri_captures.NAME)
 * in s. Returns s itself when it has no template, NULL with *err (a
 * client error: the caller answers 400) when a referenced value is absent
 * or cannot stand where it goes. */
const char *ai_proxy_expand(struct gw_request *r, const char *s, enum ai_tpl_kind kind,
                            const char **err);
int ai_proxy_has_template(const char *s);
/* v made one segment of the upstream URL (AI_TPL_URL's rules), or NULL. */
const char *ai_proxy_url_value(struct gw_request *r, const char *v);
/* Value of a query parameter of the client's request (in the arena), or NULL. */
const char *ai_proxy_query_param(struct gw_request *r, const char *name);

/* The credential for the provider request (auth.c): the configured one,
 * the client's own removed unless allow_override and the client sent one;
 * without auth, the client's `Authorization: Bearer K` in the provider's
 * form. Changes r->headers, up->url (query) or up->body (body). */
void ai_proxy_apply_auth(struct gw_request *r, const struct ai_proxy_auth *a,
                         const struct gw_llm_provider *p, struct gw_llm_upstream *up);

#endif
