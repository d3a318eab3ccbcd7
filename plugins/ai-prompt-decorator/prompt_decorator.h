/*
 * ai-prompt-decorator internals: the config struct and the pure rewrite of
 * a parsed chat body, for the plugin glue, the unit tests and the bench.
 */
#ifndef PROMPT_DECORATOR_H
#define PROMPT_DECORATOR_H

#include <cjson/cJSON.h>

#include "gw_schema.h"

/* Kong's limits (schema.lua). */
#define PROMPT_DECORATOR_MAX_PROMPTS 15
#define PROMPT_DECORATOR_MAX_CONTENT 500

enum prompt_decorator_role { PROMPT_ROLE_SYSTEM, PROMPT_ROLE_ASSISTANT, PROMPT_ROLE_USER };

/* Role names, indexed by enum prompt_decorator_role, NULL-terminated. */
extern const char *const prompt_decorator_roles[];

struct prompt_decorator_message {
    int role; /* enum prompt_decorator_role */
    const char *content;
};

struct prompt_decorator_prompts {
    struct gw_records prepend; /* struct prompt_decorator_message */
    struct gw_records append;
};

struct prompt_decorator_conf {
    struct prompt_decorator_prompts prompts;
    long max_request_body_size;
    int llm_format; /* only "openai" is supported */
};

/* Rebuilds body.messages as prepend + original + append. The added
 * messages reference the config's strings (no copies): the config snapshot
 * outlives every request that uses it. Returns -1 when the body has no
 * non-empty `messages` array (not a chat request). */
int prompt_decorator_apply(const struct prompt_decorator_conf *conf, cJSON *body);

#endif
