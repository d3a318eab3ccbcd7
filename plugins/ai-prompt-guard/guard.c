/*
 * ai-prompt-guard's logic: pattern compilation at load, and the check of
 * a parsed request body. No request or config-loader dependency, so the
 * unit tests and bench/prompt_micro.c call it directly.
 *
 * Kong joins the checked prompts into one string and runs every pattern on
 * it. We run the patterns on each piece of text (a message's string
 * content, or each text part of an array content) instead: same verdict
 * for any pattern that does not span two messages, no copy of the prompt,
 * and array contents are checked rather than refused.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "gw_arena.h"
#include "prompt_guard.h"

static const char bad_format[] =
    "ai-prompt-guard only supports llm/v1/chat or llm/v1/completions prompts";

static void code_free_cb(void *code)
{
    pcre2_code_free(code);
}

int prompt_guard_compile(struct gw_arena *arena, const char *pattern,
                         struct prompt_guard_regex *out, char *err, size_t errlen)
{
    int errcode;
    PCRE2_SIZE erroffset;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &errcode, &erroffset, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        snprintf(err, errlen, "%s at offset %zu", (const char *)msg, (size_t)erroffset);
        return -1;
    }
    gw_arena_cleanup(arena, code_free_cb, code);
    /* A JIT failure (no JIT on this CPU, or a pattern JIT cannot handle) is
     * not an error: pcre2_match then interprets the pattern, just slower. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    out->pattern = pattern;
    out->code = code;
    return 0;
}

/* Match data and JIT stack are written by every match, so each worker
 * thread has its own; the compiled patterns stay shared and read-only. */
struct match_state {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
};

static _Thread_local struct match_state *thread_state;
static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void state_free_cb(void *p)
{
    struct match_state *st = p;
    pcre2_jit_stack_free(st->stack);
    pcre2_match_context_free(st->mctx);
    pcre2_match_data_free(st->md);
    free(st);
}

static void state_key_init(void)
{
    pthread_key_create(&state_key, state_free_cb);
}

static struct match_state *match_state_get(void)
{
    if (thread_state) return thread_state;
    pthread_once(&state_once, state_key_init);
    struct match_state *st = calloc(1, sizeof(*st));
    if (!st) abort();
    /* One pair of offsets is enough: we only ask whether a pattern occurs. */
    st->md = pcre2_match_data_create(1, NULL);
    st->mctx = pcre2_match_context_create(NULL);
    /* The default JIT stack (32 KiB on the machine stack) is too small for
     * patterns that backtrack over a long prompt. */
    st->stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    if (!st->md || !st->mctx || !st->stack) abort();
    pcre2_jit_stack_assign(st->mctx, NULL, st->stack);
    pthread_setspecific(state_key, st);
    thread_state = st;
    return st;
}

/* 1: found, 0: not found, <0: a PCRE2 error (limits hit). */
static int regex_find(const struct prompt_guard_regex *re, const char *s, size_t len,
                      struct match_state *st)
{
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, st->md, st->mctx);
    if (rc >= 0) return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : rc;
}

/* The whole check of one request runs on the event loop: PCRE2's match
 * limit bounds one match (~13 ms at worst here), not a body of hundreds of
 * pieces that each come just under it (4 s measured, 310 messages against
 * '^(a+)+$'). Past this much time the check fails closed. */
#define GUARD_BUDGET_US (250 * 1000)

struct check_run {
    const struct prompt_guard_conf *conf;
    struct prompt_guard_verdict *v;
    struct match_state *st;
    int allowed; /* an allow pattern matched some piece */
    int pieces;
    uint64_t deadline_us;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static enum prompt_guard_outcome fail(struct prompt_guard_verdict *v, enum prompt_guard_outcome o,
                                      const char *fmt, const char *arg)
{
    v->outcome = o;
    snprintf(v->detail, sizeof(v->detail), fmt, arg);
    return o;
}

static enum prompt_guard_outcome over_budget(struct check_run *run, const char *list, size_t i,
                                             const char *pattern)
{
    run->v->list = list;
    run->v->index = i;
    run->v->pattern = pattern;
    return fail(run->v, PROMPT_GUARD_ERROR, "%s",
                "the whole check took over 250 ms (time budget per request)");
}

static enum prompt_guard_outcome match_error(struct prompt_guard_verdict *v, const char *list,
                                             size_t i, const char *pattern, int rc)
{
    PCRE2_UCHAR msg[120];
    pcre2_get_error_message(rc, msg, sizeof(msg));
    v->list = list;
    v->index = i;
    v->pattern = pattern;
    return fail(v, PROMPT_GUARD_ERROR, "%s", (const char *)msg);
}

/* Checks one piece of text: any deny match ends the check; an allow match
 * is remembered (deny patterns still run on the remaining pieces). */
static enum prompt_guard_outcome check_piece(struct check_run *run, const char *s, size_t len)
{
    const struct prompt_guard_conf *conf = run->conf;
    run->pieces++;
    for (size_t i = 0; i < conf->deny_patterns.n; i++) {
        int rc = regex_find(&conf->deny[i], s, len, run->st);
        if (rc < 0) return match_error(run->v, "deny_patterns", i, conf->deny[i].pattern, rc);
        if (now_us() > run->deadline_us)
            return over_budget(run, "deny_patterns", i, conf->deny[i].pattern);
        if (rc) {
            run->v->list = "deny_patterns";
            run->v->index = i;
            run->v->pattern = conf->deny[i].pattern;
            return fail(run->v, PROMPT_GUARD_DENIED, "%s", "prompt pattern is blocked");
        }
    }
    for (size_t i = 0; !run->allowed && i < conf->allow_patterns.n; i++) {
        int rc = regex_find(&conf->allow[i], s, len, run->st);
        if (rc < 0) return match_error(run->v, "allow_patterns", i, conf->allow[i].pattern, rc);
        if (now_us() > run->deadline_us)
            return over_budget(run, "allow_patterns", i, conf->allow[i].pattern);
        if (rc) {
            run->allowed = 1;
            run->v->list = "allow_patterns";
            run->v->index = i;
            run->v->pattern = conf->allow[i].pattern;
        }
    }
    return PROMPT_GUARD_ALLOWED;
}

/* A message's content: a string, or an array of parts of which the text
 * parts are checked. null (an assistant turn with only tool calls) has no
 * text to check. */
static enum prompt_guard_outcome check_content(struct check_run *run, const cJSON *content)
{
    if (!content || cJSON_IsNull(content)) return PROMPT_GUARD_ALLOWED;
    if (cJSON_IsString(content))
        return check_piece(run, content->valuestring, strlen(content->valuestring));
    if (!cJSON_IsArray(content))
        return fail(run->v, PROMPT_GUARD_BAD_FORMAT, "%s", "message content is not a string");
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return fail(run->v, PROMPT_GUARD_BAD_FORMAT, "%s", "content part without a type");
        if (strcmp(type->valuestring, "text") != 0) continue;
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(text))
            return fail(run->v, PROMPT_GUARD_BAD_FORMAT, "%s", "text part without a text string");
        enum prompt_guard_outcome o =
            check_piece(run, text->valuestring, strlen(text->valuestring));
        if (o != PROMPT_GUARD_ALLOWED) return o;
    }
    return PROMPT_GUARD_ALLOWED;
}

static int role_checked(const struct prompt_guard_conf *conf, const cJSON *msg)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
    return conf->match_all_roles || strcmp(role->valuestring, "user") == 0;
}

static enum prompt_guard_outcome check_messages(struct check_run *run, const cJSON *messages)
{
    const cJSON *m, *latest = NULL;
    cJSON_ArrayForEach(m, messages)
    {
        if (!cJSON_IsObject(m) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "role")))
            return fail(run->v, PROMPT_GUARD_BAD_FORMAT, "%s", "message without a string role");
        if (role_checked(run->conf, m)) latest = m;
    }
    /* allow_all_conversation_history: earlier turns were already checked
     * when they were sent, so only the newest one counts. */
    if (run->conf->allow_all_conversation_history)
        return latest ? check_content(run, cJSON_GetObjectItemCaseSensitive(latest, "content"))
                      : PROMPT_GUARD_ALLOWED;
    cJSON_ArrayForEach(m, messages)
    {
        if (!role_checked(run->conf, m)) continue;
        enum prompt_guard_outcome o =
            check_content(run, cJSON_GetObjectItemCaseSensitive(m, "content"));
        if (o != PROMPT_GUARD_ALLOWED) return o;
    }
    return PROMPT_GUARD_ALLOWED;
}

/* Completions: `prompt` as a string, or an array of strings. */
static enum prompt_guard_outcome check_prompt(struct check_run *run, const cJSON *prompt)
{
    if (cJSON_IsString(prompt))
        return check_piece(run, prompt->valuestring, strlen(prompt->valuestring));
    const cJSON *p;
    cJSON_ArrayForEach(p, prompt)
    {
        if (!cJSON_IsString(p))
            return fail(run->v, PROMPT_GUARD_BAD_FORMAT, "%s", "prompt array with a non-string");
        enum prompt_guard_outcome o = check_piece(run, p->valuestring, strlen(p->valuestring));
        if (o != PROMPT_GUARD_ALLOWED) return o;
    }
    return PROMPT_GUARD_ALLOWED;
}

enum prompt_guard_outcome prompt_guard_check(const struct prompt_guard_conf *conf,
                                             const cJSON *body, struct prompt_guard_verdict *v)
{
    memset(v, 0, sizeof(*v));
    struct check_run run = {
        .conf = conf, .v = v, .st = match_state_get(), .deadline_us = now_us() + GUARD_BUDGET_US};
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(body, "messages");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    int has_prompt = cJSON_IsString(prompt) || cJSON_IsArray(prompt);
    if (!cJSON_IsArray(messages) && !has_prompt)
        return fail(v, PROMPT_GUARD_BAD_FORMAT, "%s", bad_format);
    /* Both, when a body carries both: which one the upstream reads is not
     * the guard's to guess (ai-proxy refuses such a body; a plain route
     * passes it on as it is). */
    enum prompt_guard_outcome o = PROMPT_GUARD_ALLOWED;
    if (cJSON_IsArray(messages)) o = check_messages(&run, messages);
    if (o == PROMPT_GUARD_ALLOWED && has_prompt) o = check_prompt(&run, prompt);
    if (o != PROMPT_GUARD_ALLOWED) return o;
    /* No text at all: Kong checks the empty string, so an allow pattern
     * that matches "" still lets an empty conversation through. */
    if (run.pieces == 0 && (o = check_piece(&run, "", 0)) != PROMPT_GUARD_ALLOWED) return o;
    if (conf->allow_patterns.n && !run.allowed)
        return fail(v, PROMPT_GUARD_NOT_ALLOWED, "%s", "prompt doesn't match any allowed pattern");
    v->outcome = PROMPT_GUARD_ALLOWED;
    return PROMPT_GUARD_ALLOWED;
}
