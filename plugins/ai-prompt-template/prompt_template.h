/*
 * ai-prompt-template internals: templates are cut into segments at load
 * (literal text, or a {{placeholder}}), so rendering a request is one pass
 * of copies. Pure functions, for the plugin glue and the unit tests.
 */
#ifndef PROMPT_TEMPLATE_H
#define PROMPT_TEMPLATE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "gw_schema.h"

struct gw_arena;

/* Literal text (param < 0), or the value of params[param]. */
struct prompt_template_segment {
    const char *text;
    size_t len;
    int param;
};

struct prompt_template {
    const char *name;
    const char *template;
    /* Filled by prompt_template_compile. */
    struct prompt_template_segment *segs;
    size_t n_segs;
    const char **params; /* distinct placeholder names, in order of first use */
    size_t n_params;
};

struct prompt_template_conf {
    struct gw_records templates; /* struct prompt_template */
    int allow_untemplated_requests;
    int log_original_request;
    long max_request_body_size;
};

/* Cuts t->template into segments (in arena a) and checks that it renders
 * to a JSON object. Returns 0, or -1 with the reason in err. */
int prompt_template_compile(struct gw_arena *a, struct prompt_template *t, char *err,
                            size_t errlen);

/* Renders the template a request asks for with `{template://NAME}` as its
 * `messages` or `prompt`. Returns 1 with the new body in *out (the caller
 * owns it), 0 when the request is not templated and that is allowed, or -1
 * with Kong's error message in *err (in arena a). */
int prompt_template_render(const struct prompt_template_conf *conf, const cJSON *body,
                           struct gw_arena *a, cJSON **out, const char **err);

#endif
