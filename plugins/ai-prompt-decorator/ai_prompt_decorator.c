/*
 * ai-prompt-decorator (Kong priority 772): adds configured messages before
 * and after a chat request's own messages (a system prompt, guard rails,
 * a closing instruction), in the shared parsed body.
 */
#include <stdio.h>

#include "sluice.h"
#include "prompt_decorator.h"

static const char *const llm_formats[] = {"openai", NULL};

static const struct gw_field message_fields[] = {
    {GW_FIELD(struct prompt_decorator_message, role, GW_F_ENUM, GW_REQUIRED, "system"),
     .choices = prompt_decorator_roles},
    {GW_FIELD(struct prompt_decorator_message, content, GW_F_STRING, GW_REQUIRED, NULL), .min = 1,
     .max = PROMPT_DECORATOR_MAX_CONTENT},
    {0},
};

static const struct gw_schema message_schema = {
    .name = "prompt",
    .size = sizeof(struct prompt_decorator_message),
    .fields = message_fields,
};

static const struct gw_field prompts_fields[] = {
    {GW_FIELD(struct prompt_decorator_prompts, prepend, GW_F_RECORDS, 0, NULL),
     .record = &message_schema, .max = PROMPT_DECORATOR_MAX_PROMPTS},
    {GW_FIELD(struct prompt_decorator_prompts, append, GW_F_RECORDS, 0, NULL),
     .record = &message_schema, .max = PROMPT_DECORATOR_MAX_PROMPTS},
    {0},
};

static const struct gw_schema prompts_schema = {
    .name = "prompts",
    .size = sizeof(struct prompt_decorator_prompts),
    .fields = prompts_fields,
};

static const struct gw_field prompt_decorator_fields[] = {
    {GW_FIELD(struct prompt_decorator_conf, prompts, GW_F_RECORD, 0, NULL),
     .record = &prompts_schema},
    {GW_FIELD(struct prompt_decorator_conf, max_request_body_size, GW_F_INT, 0, "8192"), .min = 1,
     .max = 1024.0 * 1024 * 1024},
    {GW_FIELD(struct prompt_decorator_conf, llm_format, GW_F_ENUM, 0, "openai"),
     .choices = llm_formats},
    {0},
};

static int prompt_decorator_validate(struct gw_conf *cf, const struct gw_node *n, void *obj)
{
    struct prompt_decorator_conf *conf = obj;
    int rc = 0;
    if (!conf->prompts.prepend.n && !conf->prompts.append.n) {
        gw_conf_error(cf, n, NULL,
                      "at least one of these fields must be non-empty: 'prompts.prepend', "
                      "'prompts.append'");
        rc = -1;
    }
    return rc;
}

static const struct gw_schema prompt_decorator_schema = {
    .name = "ai-prompt-decorator",
    .size = sizeof(struct prompt_decorator_conf),
    .fields = prompt_decorator_fields,
    .validate = prompt_decorator_validate,
};

static int prompt_decorator_access(struct gw_request *r, const void *conf_, void *ctx)
{
    const struct prompt_decorator_conf *conf = conf_;
    int rc;
    cJSON *body = gw_request_prompt_json(r, conf->max_request_body_size, &rc);
    if (!body) return rc;
    if (prompt_decorator_apply(conf, body) < 0)
        return gw_respond_openai_error(r, 400, "invalid_request_error",
                                       "this LLM route only supports llm/chat type requests");
    gw_request_json_changed(r);
    return GW_OK;
}

const struct gw_plugin gw_plugin_ai_prompt_decorator = {
    .name = "ai-prompt-decorator",
    .priority = 772,
    .needs_body = 1,
    .schema = &prompt_decorator_schema,
    .access = prompt_decorator_access,
};
