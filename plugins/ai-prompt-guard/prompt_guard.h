/*
 * ai-prompt-guard internals, split from the plugin glue so the unit tests
 * and the benchmark can drive the logic with a parsed config and a cJSON
 * body, without a daemon or a config loader.
 */
#ifndef PROMPT_GUARD_H
#define PROMPT_GUARD_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "gw_schema.h"

struct gw_arena;

/* Kong's limits (schema.lua). */
#define PROMPT_GUARD_MAX_PATTERNS 10
#define PROMPT_GUARD_MAX_PATTERN_LEN 500

/* One pattern, compiled (and JIT-compiled when the platform allows) once at
 * load; the code is read-only afterwards, so worker threads share it. */
struct prompt_guard_regex {
    const char *pattern;
    void *code; /* pcre2_code_8 * */
};

struct prompt_guard_conf {
    struct gw_strings allow_patterns;
    struct gw_strings deny_patterns;
    int allow_all_conversation_history;
    long max_request_body_size;
    int match_all_roles;
    int llm_format; /* only "openai" is supported */
    /* Filled by the validate hook, parallel to the lists above. */
    struct prompt_guard_regex *allow, *deny;
};

enum prompt_guard_outcome {
    PROMPT_GUARD_ALLOWED,
    PROMPT_GUARD_DENIED,      /* a deny pattern matched */
    PROMPT_GUARD_NOT_ALLOWED, /* allow patterns set, none matched */
    PROMPT_GUARD_BAD_FORMAT,  /* neither chat messages nor a completions prompt */
    PROMPT_GUARD_ERROR,       /* PCRE2 failed while matching (match or JIT stack limit) */
};

/* What the check decided and why, for the log line (never for the client). */
struct prompt_guard_verdict {
    enum prompt_guard_outcome outcome;
    const char *list; /* "deny_patterns" when DENIED */
    size_t index;     /* index of the pattern in that list */
    const char *pattern;
    char detail[160]; /* BAD_FORMAT / ERROR: what was wrong */
};

/* Compiles `pattern` into *out, registering the pcre2 frees on `arena`.
 * Returns 0, or -1 with PCRE2's message and the offset in err. */
int prompt_guard_compile(struct gw_arena *arena, const char *pattern,
                         struct prompt_guard_regex *out, char *err, size_t errlen);

/* Runs the guard on a parsed OpenAI-format body (chat `messages`, or a
 * completions `prompt`). Returns the outcome, also stored in v. */
enum prompt_guard_outcome prompt_guard_check(const struct prompt_guard_conf *conf,
                                             const cJSON *body, struct prompt_guard_verdict *v);

#endif
