/*
 * ai-prompt-guard (Kong priority 771): blocks chat or completions requests
 * whose prompts match a deny pattern, or match none of the allow patterns.
 * Patterns are compiled once at load (validate hook); the access phase only
 * runs them. A blocked client learns nothing but "bad request", as in Kong;
 * the pattern that decided goes to the log line.
 */
#include <stdio.h>
#include <string.h>

#include "sluice.h"
#include "prompt_guard.h"

static const char *const llm_formats[] = {"openai", NULL};

static const struct gw_field prompt_guard_fields[] = {
    {GW_FIELD(struct prompt_guard_conf, allow_patterns, GW_F_STRINGS, GW_NO_ENV, NULL),
     .max = PROMPT_GUARD_MAX_PATTERNS},
    {GW_FIELD(struct prompt_guard_conf, deny_patterns, GW_F_STRINGS, GW_NO_ENV, NULL),
     .max = PROMPT_GUARD_MAX_PATTERNS},
    {GW_FIELD(struct prompt_guard_conf, allow_all_conversation_history, GW_F_BOOL, 0, "false")},
    {GW_FIELD(struct prompt_guard_conf, max_request_body_size, GW_F_INT, 0, "8192"), .min = 1,
     .max = 1024.0 * 1024 * 1024},
    {GW_FIELD(struct prompt_guard_conf, match_all_roles, GW_F_BOOL, 0, "false")},
    {GW_FIELD(struct prompt_guard_conf, llm_format, GW_F_ENUM, 0, "openai"),
     .choices = llm_formats},
    {0},
};

/* The node of item i of a list field, for error positions: a lone scalar
 * is a list of one. */
static const struct gw_node *list_item_node(const struct gw_node *list, const struct gw_node *conf,
                                            size_t i)
{
    if (list && list->type == GW_NODE_SEQ && i < list->n) return list->items[i];
    return list ? list : conf;
}

/* Each pattern of a list checked for length (the walker checks the count)
 * and compiled; every problem is reported, each at its own item. */
static int compile_list(struct gw_conf *cf, const struct gw_node *n, const char *name,
                        const struct gw_strings *list, struct prompt_guard_regex **out)
{
    const struct gw_node *list_node = gw_node_get(n, name);
    int rc = 0;
    *out = gw_calloc(gw_conf_arena(cf), (list->n + 1) * sizeof(**out));
    for (size_t i = 0; i < list->n; i++) {
        const char *pattern = list->v[i];
        const struct gw_node *item = list_item_node(list_node, n, i);
        size_t len = pattern ? strlen(pattern) : 0;
        char sub[64], err[300];
        snprintf(sub, sizeof(sub), "%s[%zu]", name, i);
        if (!pattern) continue; /* not a string: already reported */
        if (len < 1 || len > PROMPT_GUARD_MAX_PATTERN_LEN) {
            gw_conf_error(cf, item, sub, "length must be between 1 and %d",
                          PROMPT_GUARD_MAX_PATTERN_LEN);
            rc = -1;
        } else if (prompt_guard_compile(gw_conf_arena(cf), pattern, &(*out)[i], err, sizeof(err)) <
                   0) {
            gw_conf_error(cf, item, sub, "invalid regex '%s': %s", pattern, err);
            rc = -1;
        }
    }
    return rc;
}

static int prompt_guard_validate(struct gw_conf *cf, const struct gw_node *n, void *obj)
{
    struct prompt_guard_conf *conf = obj;
    int rc = 0;
    if (!conf->allow_patterns.n && !conf->deny_patterns.n) {
        gw_conf_error(cf, n, NULL,
                      "at least one of these fields must be non-empty: 'allow_patterns', "
                      "'deny_patterns'");
        rc = -1;
    }
    if (conf->match_all_roles && conf->allow_all_conversation_history) {
        const struct gw_node *at = gw_node_get(n, "match_all_roles");
        gw_conf_error(cf, at ? at : n, "match_all_roles",
                      "cannot be true when allow_all_conversation_history is true");
        rc = -1;
    }
    if (compile_list(cf, n, "allow_patterns", &conf->allow_patterns, &conf->allow) < 0) rc = -1;
    if (compile_list(cf, n, "deny_patterns", &conf->deny_patterns, &conf->deny) < 0) rc = -1;
    return rc;
}

static const struct gw_schema prompt_guard_schema = {
    .name = "ai-prompt-guard",
    .size = sizeof(struct prompt_guard_conf),
    .fields = prompt_guard_fields,
    .validate = prompt_guard_validate,
};

static int prompt_guard_access(struct gw_request *r, const void *conf_, void *ctx)
{
    const struct prompt_guard_conf *conf = conf_;
    int rc;
    cJSON *body = gw_request_prompt_json(r, conf->max_request_body_size, &rc);
    if (!body) return rc;

    struct prompt_guard_verdict v;
    switch (prompt_guard_check(conf, body, &v)) {
    case PROMPT_GUARD_ALLOWED:
        return GW_OK;
    case PROMPT_GUARD_DENIED:
        gw_request_log_field(r, "ai.prompt_guard", "denied by %s[%zu]", v.list, v.index);
        gw_warn("request %s: ai-prompt-guard: prompt matched %s[%zu] '%s'", r->id, v.list, v.index,
                v.pattern);
        break;
    case PROMPT_GUARD_NOT_ALLOWED:
        gw_request_log_field(r, "ai.prompt_guard", "no allow_patterns matched");
        gw_warn("request %s: ai-prompt-guard: prompt matched no allow_patterns", r->id);
        break;
    case PROMPT_GUARD_BAD_FORMAT:
        gw_request_log_field(r, "ai.prompt_guard", "bad format: %s", v.detail);
        break;
    case PROMPT_GUARD_ERROR:
        /* Fail closed: a pattern that cannot be evaluated must not let
         * the prompt through. The core answers 500, as Kong does. */
        gw_request_log_field(r, "ai.prompt_guard", "regex error in %s[%zu]", v.list, v.index);
        gw_error("request %s: ai-prompt-guard: %s[%zu] '%s' failed: %s", r->id, v.list, v.index,
                 v.pattern, v.detail);
        return GW_ERROR;
    }
    /* Kong's answer, which does not tell the client a guard is in place. */
    return gw_respond_openai_error(r, 400, "invalid_request_error", "bad request");
}

const struct gw_plugin gw_plugin_ai_prompt_guard = {
    .name = "ai-prompt-guard",
    .priority = 771,
    .needs_body = 1,
    .schema = &prompt_guard_schema,
    .access = prompt_guard_access,
};
