/*
 * In-process cost of ai-prompt-guard (10 deny patterns) and
 * ai-prompt-decorator on a ~4 KB chat prompt. The end-to-end runs cannot
 * resolve a few microseconds on a shared 2-CPU machine (run-to-run noise is
 * tens of microseconds per request), so the target "<= 5 us per request" is
 * checked here, on the plugins' own logic, with the real PCRE2 JIT and cJSON.
 *
 * Batches of pre-parsed bodies are timed as a whole (no clock call per
 * operation); the median batch is reported. The shared JSON parse and the
 * re-serialisation are timed separately: ai-proxy pays both anyway, so they
 * are not the prompt plugins' cost on the ai-proxy path.
 *
 * Built and run by bench/run.sh against build-bench/libsluice_core.a.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "gw_arena.h"
#include "../plugins/ai-prompt-decorator/prompt_decorator.h"
#include "../plugins/ai-prompt-guard/prompt_guard.h"

#define BATCH 500
#define BATCHES 41

/* Same patterns as the bench's kong.yml (bench/lib.sh), none matching. */
static const char *deny[] = {
    "(?i)ignore (all|any) previous instructions",
    "(?i)you are now DAN",
    "(?i)\\bpassword\\b.*\\breveal\\b",
    "\\b\\d{3}-\\d{2}-\\d{4}\\b",
    "(?i)system prompt",
    "(?i)jailbreak",
    "(?i)credit card number",
    "(?i)rm -rf /",
    "(?i)<script[^>]*>",
    "(?i)drop table \\w+",
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

enum op { OP_PARSE, OP_GUARD, OP_DECORATE, OP_GUARD_DECORATE, OP_SERIALISE, N_OPS };
static const char *op_names[] = {"json parse (shared, paid by ai-proxy anyway)",
                                 "ai-prompt-guard check", "ai-prompt-decorator apply",
                                 "guard + decorator",
                                 "re-serialise decorated body (ai-proxy serialises anyway)"};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s BODY.json\n", argv[0]);
        return 2;
    }
    const char *json = read_file(argv[1]);
    if (!json) {
        perror(argv[1]);
        return 1;
    }
    struct gw_arena *arena = gw_arena_new(0);
    struct prompt_guard_conf guard = {0};
    size_t n_deny = sizeof(deny) / sizeof(deny[0]);
    char err[300];
    guard.deny_patterns = (struct gw_strings){deny, n_deny};
    guard.max_request_body_size = 8192;
    guard.deny = gw_calloc(arena, (n_deny + 1) * sizeof(*guard.deny));
    for (size_t i = 0; i < n_deny; i++) {
        if (prompt_guard_compile(arena, deny[i], &guard.deny[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "pattern %zu: %s\n", i, err);
            return 1;
        }
    }
    struct prompt_decorator_message pre[] = {
        {PROMPT_ROLE_SYSTEM, "You are a concise assistant for the benchmark."}};
    struct prompt_decorator_message app[] = {{PROMPT_ROLE_USER, "Answer in one sentence."}};
    struct prompt_decorator_conf deco = {.prompts = {{pre, 1}, {app, 1}}};

    static cJSON *bodies[BATCH];
    static double per_op[N_OPS][BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now_ns();
        for (int i = 0; i < BATCH; i++)
            bodies[i] = cJSON_Parse(json);
        per_op[OP_PARSE][b] = (now_ns() - t0) / BATCH;
        struct prompt_guard_verdict v;
        t0 = now_ns();
        for (int i = 0; i < BATCH; i++) {
            if (prompt_guard_check(&guard, bodies[i], &v) != PROMPT_GUARD_ALLOWED) {
                fprintf(stderr, "the bench prompt must pass the guard (outcome %d)\n", v.outcome);
                return 1;
            }
        }
        per_op[OP_GUARD][b] = (now_ns() - t0) / BATCH;
        t0 = now_ns();
        for (int i = 0; i < BATCH; i++) {
            if (prompt_decorator_apply(&deco, bodies[i]) < 0) {
                fprintf(stderr, "the decorator refused the bench prompt\n");
                return 1;
            }
        }
        per_op[OP_DECORATE][b] = (now_ns() - t0) / BATCH;
        per_op[OP_GUARD_DECORATE][b] = per_op[OP_GUARD][b] + per_op[OP_DECORATE][b];
        t0 = now_ns();
        for (int i = 0; i < BATCH; i++)
            free(cJSON_PrintUnformatted(bodies[i]));
        per_op[OP_SERIALISE][b] = (now_ns() - t0) / BATCH;
        for (int i = 0; i < BATCH; i++)
            cJSON_Delete(bodies[i]);
    }
    printf("MICRO body_bytes=%zu patterns=%zu batches=%d batch=%d\n", strlen(json), n_deny, BATCHES,
           BATCH);
    for (int o = 0; o < N_OPS; o++) {
        qsort(per_op[o], BATCHES, sizeof(double), cmp_double);
        printf("MICRO_OP\t%s\t%.2f\t%.2f\t%.2f\n", op_names[o], per_op[o][BATCHES / 2] / 1000,
               per_op[o][0] / 1000, per_op[o][BATCHES * 9 / 10] / 1000);
    }
    gw_arena_free(arena);
    return 0;
}
