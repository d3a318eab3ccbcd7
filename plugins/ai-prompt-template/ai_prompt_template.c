/*
 * ai-prompt-template (Kong priority 773): a request whose `messages` or
 * `prompt` is "{template://NAME}" is replaced by the named template, its
 * {{placeholders}} filled from the request's `properties`. Admins thereby
 * restrict clients to vetted prompts (allow_untemplated_requests: false).
 */
#include <stdio.h>

#include "sluice.h"
#include "prompt_template.h"

static const struct gw_field template_fields[] = {
    {GW_FIELD(struct prompt_template, name, GW_F_STRING, GW_REQUIRED, NULL)},
    {GW_FIELD(struct prompt_template, template, GW_F_STRING, GW_REQUIRED | GW_NO_ENV, NULL)},
    {0},
};

static const struct gw_schema template_schema = {
    .name = "template",
    .size = sizeof(struct prompt_template),
    .fields = template_fields,
};

static const struct gw_field prompt_template_fields[] = {
    {GW_FIELD(struct prompt_template_conf, templates, GW_F_RECORDS, GW_REQUIRED, NULL),
     .record = &template_schema},
    {GW_FIELD(struct prompt_template_conf, allow_untemplated_requests, GW_F_BOOL, 0, "true")},
    {GW_FIELD(struct prompt_template_conf, log_original_request, GW_F_BOOL, 0, "false")},
    {GW_FIELD(struct prompt_template_conf, max_request_body_size, GW_F_INT, 0, "8192"), .min = 1,
     .max = 1024.0 * 1024 * 1024},
    {0},
};

/* Compiles every template now, so a broken one is a config error that
 * points at it rather than a failure on the requests that use it. */
static int prompt_template_validate(struct gw_conf *cf, const struct gw_node *n, void *obj)
{
    struct prompt_template_conf *conf = obj;
    struct prompt_template *all = conf->templates.v;
    const struct gw_node *list = n ? gw_node_get(n, "templates") : NULL;
    int rc = 0;
    for (size_t i = 0; i < conf->templates.n; i++) {
        char sub[48], err[160];
        if (!all[i].name || !all[i].template) continue; /* already reported as missing */
        if (prompt_template_compile(gw_conf_arena(cf), &all[i], err, sizeof(err)) == 0) continue;
        const struct gw_node *item =
            list && list->type == GW_NODE_SEQ && i < list->n ? list->items[i] : n;
        const struct gw_node *at = item ? gw_node_get(item, "template") : NULL;
        snprintf(sub, sizeof(sub), "templates[%zu].template", i);
        gw_conf_error(cf, at ? at : item, sub, "%s", err);
        rc = -1;
    }
    return rc;
}

static const struct gw_schema prompt_template_schema = {
    .name = "ai-prompt-template",
    .size = sizeof(struct prompt_template_conf),
    .fields = prompt_template_fields,
    .validate = prompt_template_validate,
};

static int prompt_template_access(struct gw_request *r, const void *conf_, void *ctx)
{
    const struct prompt_template_conf *conf = conf_;
    size_t len;
    const char *raw = gw_request_body(r, &len), *err;
    if (conf->log_original_request)
        gw_request_log_field(r, "ai.payload.original_request", "%.*s",
                             (int)(len < (size_t)conf->max_request_body_size
                                       ? len
                                       : (size_t)conf->max_request_body_size),
                             raw ? raw : "");
    int rc;
    cJSON *body = gw_request_prompt_json(r, conf->max_request_body_size, &rc);
    if (!body) return rc;
    cJSON *rendered;
    switch (prompt_template_render(conf, body, r->arena, &rendered, &err)) {
    case 0:
        return GW_OK;
    case 1:
        gw_request_json_replace(r, rendered);
        return GW_OK;
    default:
        return gw_respond_openai_error(r, 400, "invalid_request_error", "%s", err);
    }
}

const struct gw_plugin gw_plugin_ai_prompt_template = {
    .name = "ai-prompt-template",
    .priority = 773,
    .needs_body = 1,
    .schema = &prompt_template_schema,
    .access = prompt_template_access,
};
